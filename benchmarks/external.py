"""Load a running app given with ``--url``, with a token or one fetched at login.

The harness starts no server and seeds nothing here. It reads Redis counters only
when ``--redis-url`` is given, and server CPU only when ``--server-pid`` names a
local process. The URL must be loopback unless ``--allow-remote-host`` is given.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from http.client import HTTPMessage
from typing import IO, Any, NoReturn

from benchmarks import redis_server
from benchmarks.loadgen import choose_generator
from benchmarks.machine import machine_info
from benchmarks.measure import LoadSettings, Measurement, combine_rounds, measure
from benchmarks.options import Options
from benchmarks.redis_server import RedisTarget, require_allowed_host
from benchmarks.results import RunResult
from benchmarks.runner import now_text, supervised_run
from benchmarks.seeding import write_header_file
from benchmarks.variants import OK

logger = logging.getLogger(__name__)

LOGIN_TIMEOUT_SECONDS = 10
VARIANT_NAME = "external"


class RejectRedirects(urllib.request.HTTPRedirectHandler):
    """Raise on every redirect, so the login body and the token reach only
    ``--login-url``, whose host was checked."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> NoReturn:
        fp.close()
        raise RuntimeError(
            f"--login-url {req.full_url!r} responded with a {code} redirect to "
            f"{newurl!r}; the harness follows no redirects, so give the final URL "
            "as --login-url"
        )


def build_login_opener() -> urllib.request.OpenerDirector:
    """Build an opener that follows no redirects and ignores proxy variables.

    A proxy from ``http_proxy`` or ``https_proxy`` would receive the login body
    and the token, and it is not checked against the loopback rule.
    """
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), RejectRedirects()
    )


def fetch_token(options: Options) -> str:
    """POST ``--login-body`` to ``--login-url`` and return the token in the response.

    A body that starts with "{" is sent as JSON, any other body as a form.
    Raises RuntimeError if the JSON response has no such field or the server
    responds with a redirect.
    """
    assert options.login_url is not None
    require_allowed_host(
        options.login_url, allow_remote=options.allow_remote_host, what="--login-url"
    )
    body = (options.login_body or "").encode()
    is_json = body.lstrip().startswith(b"{")
    content_type = (
        "application/json" if is_json else "application/x-www-form-urlencoded"
    )
    request = urllib.request.Request(
        options.login_url,
        data=body,
        method="POST",
        headers={"Content-Type": content_type},
    )
    opener = build_login_opener()
    with opener.open(request, timeout=LOGIN_TIMEOUT_SECONDS) as response:
        body_json: Any = json.loads(response.read())
    token = None
    if isinstance(body_json, dict):
        token = body_json.get(options.token_field)
    if not isinstance(token, str) or not token:
        raise RuntimeError(
            f"the login response from {options.login_url} has no string field "
            f"{options.token_field!r}; set --token-field to the field with the token"
        )
    return token


def run_external(options: Options) -> RunResult:
    """Measure the app at ``--url`` at one concurrency and, if selected, a sweep."""
    assert options.url is not None
    require_allowed_host(
        options.url, allow_remote=options.allow_remote_host, what="--url"
    )
    token = options.token or fetch_token(options)
    started = now_text()
    generator = choose_generator(options.generator)
    # NOTE: the process group may also contain processes other than the server,
    # such as the shell that started it, and their CPU time counts too.
    server_pgid = os.getpgid(options.server_pid) if options.server_pid else None
    with supervised_run(options.keep_logs) as supervisor:
        header_file = write_header_file(
            supervisor.log_dir / "headers-external.txt", [f"Bearer {token}"]
        )
        client = None
        if options.redis_url:
            require_allowed_host(
                options.redis_url,
                allow_remote=options.allow_remote_host,
                what="--redis-url",
            )
            client = RedisTarget(options.redis_url, None).client()
        load = LoadSettings(
            supervisor, generator, options.duration, options.warmup, options.client_cpu
        )

        def measure_at(connections: int) -> Measurement:
            logger.info("measuring %s at %d connections", options.url, connections)
            return measure(
                load,
                variant=VARIANT_NAME,
                url=options.url or "",
                header_file=header_file,
                expected_statuses=OK,
                connections=connections,
                stored_sessions=None,
                server_pgid=server_pgid,
                redis_client=client,
            )

        result = RunResult(
            command=options.command,
            started_at=started,
            finished_at=started,
            machine=machine_info(
                redis_server.server_version(client) if client else None
            ),
            settings={
                "target": options.url,
                "load generator": generator,
                "duration per measurement (s)": options.duration,
                "warm-up per measurement (s)": options.warmup,
                "connections": options.connections,
                "rounds": options.rounds,
            },
        )
        try:
            if "comparison" in options.suites:
                rounds = [
                    measure_at(options.connections) for _ in range(options.rounds)
                ]
                result.comparison = [combine_rounds(rounds)]
            if "concurrency" in options.suites:
                result.concurrency = [
                    measure_at(level) for level in options.concurrency_levels
                ]
        finally:
            if client is not None:
                client.close()
        result.notes = [
            *options.notes,
            "The harness did not start this server, so its setup is not recorded.",
        ]
        result.finished_at = now_text()
    return result
