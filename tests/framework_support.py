"""Helpers for the framework tests: server processes, probes and middlewares.

Server processes listen on a free loopback port, write their output to a log
file that failures show, and are terminated (then killed) on exit.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from examples.demo_support import REDIS_URL_VARIABLE
from tests.redis_servers import free_port

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REPOSITORY = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_TAIL_CHARACTERS = 3000

#: Demo accounts from examples/demo_support.py.
ALICE = {"username": "alice", "password": "wonderland"}
BOB = {"username": "bob", "password": "builder"}


def bearer(token: str) -> dict[str, str]:
    """Build the Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


class ServerProcess:
    """A web server started as a subprocess, for use as a context manager.

    ``command`` is the argument list after ``python -m``; ``{port}`` in it is
    replaced by the chosen port. The server's Redis URL comes from
    ``BEARER_MW_REDIS_URL``.
    """

    def __init__(self, command: list[str], redis_url: str, ready_path: str = "/"):
        self.port = free_port()
        self.command = [
            sys.executable,
            "-m",
            *(part.format(port=self.port) for part in command),
        ]
        self.redis_url = redis_url
        self.ready_path = ready_path
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            prefix="bearer-mw-server-", suffix=".log", delete=False
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Self:
        environment = {
            **os.environ,
            REDIS_URL_VARIABLE: self.redis_url,
            "PYTHONPATH": str(REPOSITORY),
        }
        self._process = subprocess.Popen(
            self.command,
            cwd=REPOSITORY,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"server {self.command} exited with code "
                    f"{self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                httpx.get(self.url + self.ready_path, timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return
        raise RuntimeError(
            f"server {self.command} did not answer within {START_TIMEOUT} s:\n"
            f"{self.log_tail()}"
        )

    def log_tail(self) -> str:
        """Return the end of the server's output."""
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return text[-LOG_TAIL_CHARACTERS:]

    def close(self) -> None:
        """Terminate the server, kill it if it does not stop, remove its log."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        self._process = None
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


def login_over_http(client: httpx.Client, account: dict[str, str]) -> str:
    """Log in through the app's ``/login`` route and return the token."""
    response = client.post("/login", json=account)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def websocket_handshake_status(
    port: int, path: str, headers: dict[str, str] | None = None
) -> int:
    """Open a websocket handshake on a loopback server; return the HTTP status.

    101 means the server accepted the connection. The socket is closed right
    after the status line, so the app receives a disconnect.
    """
    key = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection((HOST, port), timeout=10) as connection:
        connection.sendall(request)
        reply = b""
        while b"\r\n" not in reply:
            chunk = connection.recv(1024)
            if not chunk:
                break
            reply += chunk
    status_line = reply.split(b"\r\n", 1)[0].decode("latin-1")
    return int(status_line.split()[1])


class ErrorReporter:
    """WSGI middleware that turns an exception into a 500 and records it."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.errors: list[BaseException] = []

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        body = None
        try:
            body = self.app(environ, start_response)
            return list(body)
        except Exception as error:
            self.errors.append(error)
            # The body is buffered above, so no header has gone out yet.
            start_response(
                "500 Internal Server Error", [("Content-Type", "text/plain")]
            )
            return [b"internal error"]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


class AsyncErrorReporter:
    """ASGI middleware that turns an exception into a 500 and records it.

    A 500 is sent only if the response has not started yet.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.errors: list[BaseException] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = False

        async def watch(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:
            self.errors.append(error)
            if scope["type"] != "http" or started:
                raise
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"internal error"})


def flask_over_asgi() -> Any:
    """Build the Flask example as an ASGI app, for ``uvicorn --factory``."""
    from asgiref.wsgi import WsgiToAsgi  # noqa: PLC0415 - server-only import

    from examples.demo_support import redis_url_from_environment  # noqa: PLC0415
    from examples.flask_app import create_app  # noqa: PLC0415

    return WsgiToAsgi(create_app(redis_url_from_environment()))
