"""Run the demo: choose the Redis client, bind, print curl lines, then serve."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

import redis
from werkzeug.serving import WSGIRequestHandler, make_server

from ..async_store import AsyncSessionStore
from ..client import redis_from_url
from ..errors import ConfigurationError
from ..store import SessionStore
from .asgi_app import create_asgi_app
from .endpoints import LOGIN_PATH, LOGOUT_PATH, ME_PATH, RENEW_PATH
from .wsgi_app import create_wsgi_app

__all__ = ["DemoOptions", "curl_lines", "run_demo"]

logger = logging.getLogger("bearer_mw.demo")

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
# Extracts the token from a JSON response on stdin, for the printed curl lines.
READ_TOKEN = (
    """python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'"""  # noqa: S105 - a shell command
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """Settings of one demo run, as the command line gives them."""

    host: str = "127.0.0.1"
    port: int = 8000
    wsgi: bool = False
    redis_url: str | None = None
    active_seconds: int = 600
    idle_seconds: int = 3600
    log_level: str = "INFO"


def base_url(host: str, port: int) -> str:
    """Build the URL that clients on this machine use to reach the server."""
    if host in {"0.0.0.0", ""}:  # noqa: S104 - only turns a wildcard into loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def curl_lines(url: str) -> list[str]:
    """Write shell lines that log in, read the session, renew and log out."""
    bearer = '-H "Authorization: Bearer $TOKEN"'
    login_body = """'{"user": "alice"}'"""
    return [
        "# log in as alice and keep the token in $TOKEN",
        f"TOKEN=$(curl -s -X POST {url}{LOGIN_PATH} "
        f"-H 'Content-Type: application/json' -d {login_body} | {READ_TOKEN})",
        "# show the session behind the token",
        f"curl -s -w '\\n' {url}{ME_PATH} {bearer}",
        "# swap the token for a new one; the old token stops working",
        f"TOKEN=$(curl -s -X POST {url}{RENEW_PATH} {bearer} | {READ_TOKEN})",
        "# end the session; the response is 204 No Content",
        f"curl -s -i -X POST {url}{LOGOUT_PATH} {bearer}",
    ]


def describe_redis_url(url: str) -> str:
    """Name the server of a Redis URL without its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    try:
        port = parts.port
    except ValueError:
        port = None
    where = parts.hostname or "localhost"
    return f"{parts.scheme}://{where}:{port}" if port else f"{parts.scheme}://{where}"


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Serve the demo until Ctrl-C or SIGTERM; return the process exit status."""
    if options.host not in LOOPBACK_HOSTS:
        logger.warning(
            "listening on %s: anyone who reaches this address can log in as any "
            "user, because the demo trusts the name sent to %s",
            options.host,
            LOGIN_PATH,
        )

    sync_client = _sync_client(options.redis_url)
    if sync_client is None:
        return 1
    settings: dict[str, Any] = {
        "active_period": options.active_seconds,
        "idle_period": options.idle_seconds,
    }
    if options.wsgi:
        return _serve_wsgi(options, SessionStore(sync_client, **settings), out)

    sync_client.close()
    async_client = _async_client(options.redis_url)
    store = AsyncSessionStore(async_client, **settings)
    return _serve_asgi(options, store, out)


def _sync_client(redis_url: str | None) -> Any:
    """Build the sync client and PING Redis; return None if the PING fails."""
    if redis_url is None:
        import fakeredis  # noqa: PLC0415 - an optional dependency (demo extra)

        logger.info("using an embedded fakeredis; sessions end with the process")
        return fakeredis.FakeRedis()

    where = describe_redis_url(redis_url)
    try:
        client = redis_from_url(redis_url)
    except ConfigurationError as error:
        logger.error("invalid --redis-url: %s", error)  # noqa: TRY400
        return None
    try:
        client.ping()
    except redis.RedisError as error:
        logger.error("cannot reach Redis at %s: %s", where, error)  # noqa: TRY400
        client.close()
        return None
    logger.info("using Redis at %s", where)
    return client


def _async_client(redis_url: str | None) -> Any:
    if redis_url is None:
        import fakeredis  # noqa: PLC0415 - an optional dependency (demo extra)

        return fakeredis.FakeAsyncRedis()
    return redis_from_url(redis_url, asyncio=True)


def _announce(options: DemoOptions, port: int, server: str, out: TextIO) -> None:
    url = base_url(options.host, port)
    logger.info("demo listening on %s (%s); press Ctrl-C to stop", url, server)
    lines = [
        f"bearer_mw demo on {url}",
        f"It trusts the user name sent to {LOGIN_PATH}: there are no passwords.",
        "",
        *(f"  {line}" for line in curl_lines(url)),
        "",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without its access log, which the demo writes itself."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _serve_wsgi(options: DemoOptions, store: SessionStore, out: TextIO) -> int:
    try:
        # make_server is what run_simple runs without its reloader; calling it
        # directly gives the bound port before serving, which --port 0 needs.
        server = make_server(
            options.host,
            options.port,
            create_wsgi_app(store),
            threaded=True,
            request_handler=_QuietRequestHandler,
        )
    except OSError as error:
        logger.error(  # noqa: TRY400
            "cannot listen on %s port %d: %s", options.host, options.port, error
        )
        store.client.close()
        return 1

    port = int(server.server_address[1])
    _announce(options, port, "WSGI, Werkzeug development server", out)
    # Set both handlers. A shell starts background jobs with SIGINT ignored,
    # and Python then raises no KeyboardInterrupt on Ctrl-C or kill -INT.
    previous = {
        number: signal.signal(number, _raise_keyboard_interrupt)
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        server.server_close()
        store.client.close()
    logger.info("demo stopped")
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family, kind, protocol, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _serve_asgi(options: DemoOptions, store: AsyncSessionStore, out: TextIO) -> int:
    import uvicorn  # noqa: PLC0415 - an optional dependency (demo extra)

    try:
        sock = _bind(options.host, options.port)
    except OSError as error:
        logger.error(  # noqa: TRY400
            "cannot listen on %s port %d: %s", options.host, options.port, error
        )
        return 1

    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        create_asgi_app(store, close_client_on_shutdown=True),
        host=options.host,
        port=port,
        log_config=None,
        log_level=options.log_level.lower(),
        access_log=False,
        lifespan="on",
        # A client that keeps a request open must not keep Ctrl-C waiting.
        timeout_graceful_shutdown=3,
    )
    _announce(options, port, "ASGI, uvicorn", out)
    try:
        # After a graceful shutdown on SIGINT, uvicorn raises the signal again,
        # which arrives here as KeyboardInterrupt.
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    logger.info("demo stopped")
    return 0
