"""Call one app variant in-process, without a server: the program that callgrind runs.

``python -m benchmarks.request_loop VARIANT WARMUP REQUESTS`` builds the variant's
app with the factory that its server uses: ``create_app`` in ``apps/wsgi.py`` or
``apps/asgi.py``, configured by BENCH_APP and BENCH_REDIS_URL. It calls the app
WARMUP times and then REQUESTS times, and exits with status 1 when a response has
a status that the variant does not expect. The Authorization header value comes
from BENCH_AUTHORIZATION, which is unset for requests without the header, so the
token stays off the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
from typing import Any

from benchmarks.apps import asgi, wsgi
from benchmarks.servers import REQUEST_PATH
from benchmarks.variants import VARIANTS_BY_NAME

AUTHORIZATION_ENV = "BENCH_AUTHORIZATION"


class UnexpectedStatusError(RuntimeError):
    """A response whose status the variant does not expect."""


def check_status(status: int, expected: frozenset[int]) -> None:
    if status not in expected:
        allowed = ", ".join(map(str, sorted(expected)))
        raise UnexpectedStatusError(f"status {status}, expected {allowed}")


def wsgi_environ(authorization: str | None) -> wsgi.Environ:
    """Build the environ of a ``GET`` request: the keys that PEP 3333 requires,
    the Host header and, if given, the Authorization header."""
    environ: wsgi.Environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": REQUEST_PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    return environ


def asgi_scope(authorization: str | None) -> asgi.Scope:
    """Build the HTTP connection scope of a ``GET`` request, with the Host header
    and, if given, the Authorization header."""
    headers = [(b"host", b"127.0.0.1:8000")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode("latin-1")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": REQUEST_PATH,
        "raw_path": REQUEST_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def call_wsgi(
    app: wsgi.WSGIApp, environ: wsgi.Environ, count: int, expected: frozenset[int]
) -> None:
    """Call the app ``count`` times, read each body and close it as a server does."""
    status_lines = [""]

    def write(data: bytes) -> None:
        pass

    def start_response(status: str, headers: object, exc_info: object = None) -> Any:
        status_lines[0] = status
        return write

    for _ in range(count):
        status_lines[0] = "0"
        # The middleware adds keys to the environ, so each request gets a copy.
        body = app(dict(environ), start_response)
        try:
            for _chunk in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        check_status(int(status_lines[0].split(" ", 1)[0]), expected)


async def call_asgi(
    app: asgi.ASGIApp, scope: asgi.Scope, count: int, expected: frozenset[int]
) -> None:
    """Call the app ``count`` times with an empty request body."""
    statuses = [0]

    async def receive() -> asgi.Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: asgi.Message) -> None:
        if message["type"] == "http.response.start":
            statuses[0] = message["status"]

    for _ in range(count):
        statuses[0] = 0
        # The middleware adds keys to the scope, so each request gets a copy.
        await app(dict(scope), receive, send)
        check_status(statuses[0], expected)


async def warm_up_and_call_asgi(
    app: asgi.ASGIApp,
    scope: asgi.Scope,
    warmup: int,
    requests: int,
    expected: frozenset[int],
) -> None:
    # One event loop serves both phases, so the warm-up also opens the Redis
    # connection that the measured requests use.
    await call_asgi(app, scope, warmup, expected)
    await call_asgi(app, scope, requests, expected)


def run_variant(name: str, warmup: int, requests: int) -> None:
    variant = VARIANTS_BY_NAME[name]
    authorization = os.environ.get(AUTHORIZATION_ENV)
    expected = variant.expected_statuses
    if variant.app.interface == "wsgi":
        wsgi_app = wsgi.create_app()
        environ = wsgi_environ(authorization)
        call_wsgi(wsgi_app, environ, warmup, expected)
        call_wsgi(wsgi_app, environ, requests, expected)
        return
    asgi_app = asgi.create_app()
    scope = asgi_scope(authorization)
    asyncio.run(warm_up_and_call_asgi(asgi_app, scope, warmup, requests, expected))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.request_loop",
        description="Call one app variant in-process; benchmarks.instructions "
        "runs this under callgrind.",
    )
    parser.add_argument("variant", choices=sorted(VARIANTS_BY_NAME))
    parser.add_argument("warmup", type=int, help="requests before the measured ones")
    parser.add_argument("requests", type=int, help="measured requests")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run_variant(args.variant, args.warmup, args.requests)
    except UnexpectedStatusError as exc:
        print(f"error: {args.variant}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
