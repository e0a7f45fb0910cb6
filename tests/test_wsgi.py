"""WSGI specifics of BearerMiddleware: the environ, start_response and close()."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import fakeredis
import pytest
from werkzeug.test import Client

from bearer_mw import BearerMiddleware, SessionStore
from tests.middleware_support import CountingClient, echo_wsgi_app


class SlowClient(CountingClient):
    """A counting client that holds each command for a while, to widen races."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        time.sleep(0.05)
        return super().execute_command(*args, **options)


@pytest.fixture
def redis_client() -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture
def counting(redis_client: fakeredis.FakeRedis) -> CountingClient:
    return CountingClient(redis_client)


@pytest.fixture
def token(redis_client: fakeredis.FakeRedis) -> str:
    token, _ = SessionStore(redis_client).create_session("ada", {"scopes": ["read"]})
    return token


class ClosingBody:
    """A response body that yields chunks on demand and counts close() calls."""

    def __init__(self, chunks: int, size: int) -> None:
        self.chunks = chunks
        self.size = size
        self.produced = 0
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.produced += 1
            yield b"x" * self.size

    def close(self) -> None:
        self.closed += 1


def test_environ_for_active_session(counting: CountingClient, token: str) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    middleware = BearerMiddleware(app, SessionStore(counting), required=True)
    response = Client(middleware).get("/", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 204
    assert seen["REMOTE_USER"] == "ada"
    assert seen["AUTH_TYPE"] == "Bearer"
    assert seen["bearer_mw.session"].user_id == "ada"
    assert seen["bearer_mw.session"].scopes == ("read",)
    assert seen["bearer_mw.auth"].validate() is seen["bearer_mw.session"]
    assert counting.commands == ["GET"]


def test_environ_keys_absent_when_anonymous(counting: CountingClient) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    Client(BearerMiddleware(app, SessionStore(counting))).get("/")

    assert "REMOTE_USER" not in seen
    assert "AUTH_TYPE" not in seen
    assert "bearer_mw.session" not in seen
    assert seen["bearer_mw.auth"].validate() is None
    assert seen["bearer_mw.auth"].token is None


@pytest.mark.parametrize(
    ("required", "status"),
    [pytest.param(False, 200, id="optional"), pytest.param(True, 401, id="required")],
)
def test_missing_authorization_environ(
    counting: CountingClient, required: bool, status: int
) -> None:
    # Apache's mod_wsgi drops the header unless WSGIPassAuthorization is On;
    # the environ then looks exactly like a request without credentials.
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    middleware = BearerMiddleware(
        echo_wsgi_app, SessionStore(counting), required=required
    )
    body = b"".join(middleware(environ, start_response))

    assert int(statuses[0].split()[0]) == status
    if status == 200:
        assert json.loads(body)["user"] is None
    assert counting.commands == []


def test_start_response_exc_info_forwarded(
    counting: CountingClient, token: str
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            raise RuntimeError("template failed")
        except RuntimeError:
            write = start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain")],
                sys.exc_info(),
            )
        write(b"partial ")
        return [b"error page"]

    calls: list[tuple[Any, ...]] = []
    written: list[bytes] = []

    def server_write(data: bytes) -> None:
        written.append(data)

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        calls.append((status, headers, exc_info))
        return server_write

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
    }
    middleware = BearerMiddleware(app, SessionStore(counting), required=True)
    body = list(middleware(environ, start_response))

    assert len(calls) == 1
    status, headers, exc_info = calls[0]
    assert status == "500 Internal Server Error"
    assert headers == [("Content-Type", "text/plain")]
    assert exc_info is not None
    assert exc_info[0] is RuntimeError
    assert str(exc_info[1]) == "template failed"
    assert written == [b"partial "]
    assert body == [b"error page"]


def test_close_called_once_with_test_client(counting: CountingClient) -> None:
    body = ClosingBody(chunks=5, size=10)

    def app(environ: dict[str, Any], start_response: Any) -> ClosingBody:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    client = Client(BearerMiddleware(app, SessionStore(counting)))
    response = client.get("/", buffered=False)
    first = next(iter(response.response))
    response.close()

    assert first == b"x" * 10
    assert body.produced == 1
    assert body.closed == 1


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_close_called_once_on_client_disconnect(
    counting: CountingClient, token: str
) -> None:
    # Enough data that the server keeps writing after the client has gone.
    body = ClosingBody(chunks=10_000, size=65_536)

    def app(environ: dict[str, Any], start_response: Any) -> ClosingBody:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return body

    middleware = BearerMiddleware(app, SessionStore(counting), required=True)
    with make_server("127.0.0.1", 0, middleware, handler_class=QuietHandler) as server:
        server.timeout = 10
        worker = threading.Thread(target=server.handle_request)
        worker.start()
        with socket.create_connection(server.server_address, timeout=10) as client:
            client.sendall(
                b"GET / HTTP/1.0\r\nHost: localhost\r\n"
                b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
            )
            first = client.recv(1024)
            client.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0"
            )
        worker.join(timeout=30)

    assert first.startswith(b"HTTP/1.0 200")
    assert not worker.is_alive()
    assert body.produced < body.chunks
    assert body.closed == 1


def test_lazy_validate_cached(redis_client: fakeredis.FakeRedis, token: str) -> None:
    counting = CountingClient(redis_client)
    results: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        auth = environ["bearer_mw.auth"]
        results.extend([auth.validate(), auth.validate(), auth.get_session()])
        start_response("204 No Content", [])
        return []

    middleware = BearerMiddleware(app, SessionStore(counting), lazy=True)
    Client(middleware).get("/", headers={"Authorization": f"Bearer {token}"})

    assert counting.commands == ["GET"]
    assert results[0] is not None
    assert results[0] is results[1] is results[2]


def test_lazy_validate_threads_share_lookup(
    redis_client: fakeredis.FakeRedis, token: str
) -> None:
    slow = SlowClient(redis_client)
    results: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        auth = environ["bearer_mw.auth"]
        barrier = threading.Barrier(8)

        def validate() -> Any:
            barrier.wait()
            return auth.validate()

        with ThreadPoolExecutor(max_workers=8) as pool:
            results.extend(pool.map(lambda _: validate(), range(8)))
        start_response("204 No Content", [])
        return []

    middleware = BearerMiddleware(app, SessionStore(slow), lazy=True)
    Client(middleware).get("/", headers={"Authorization": f"Bearer {token}"})

    assert slow.commands == ["GET"]
    assert len(results) == 8
    assert results[0] is not None
    assert all(result is results[0] for result in results)


def test_lazy_required_route_looks_up_first(
    counting: CountingClient, token: str
) -> None:
    middleware = BearerMiddleware(
        echo_wsgi_app, SessionStore(counting), lazy=True, required=True
    )

    response = Client(middleware).get("/", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json == {
        "user": "ada",
        "auth_type": "Bearer",
        "scopes": ["read"],
        "has_auth": True,
    }
    assert counting.commands == ["GET"]


def test_auth_repr_hides_token(counting: CountingClient, token: str) -> None:
    shown: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        shown.append(repr(environ["bearer_mw.auth"]))
        start_response("204 No Content", [])
        return []

    Client(BearerMiddleware(app, SessionStore(counting))).get(
        "/", headers={"Authorization": f"Bearer {token}"}
    )

    assert shown == ["RequestAuth(token=<hidden>)"]
