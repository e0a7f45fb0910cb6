"""The examples served by real server processes on loopback ports.

Each server starts once per module and reads ``BEARER_MW_REDIS_URL``; each
test flushes Redis through the ``redis_url`` fixture first.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.framework_support import (
    ALICE,
    BOB,
    ServerProcess,
    bearer,
    login_over_http,
    websocket_handshake_status,
)
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.slow

#: Server command lines after ``python -m``, by test id.
SERVERS = {
    "uvicorn-fastapi": [
        "uvicorn", "examples.fastapi_app:app", "--port", "{port}", "--ws", "wsproto",
    ],
    # NOTE: under uvicorn 0.55 with asgiref 3.13, WsgiToAsgi fails about a
    # quarter of keep-alive requests (16 of 60 in one run) with a 500
    # ("CurrentThreadExecutor already quit or is broken"), even for a bare
    # Flask app, so hypercorn serves it here.
    "hypercorn-flask-wsgitoasgi": [
        "hypercorn", "tests.framework_support:flask_over_asgi()",
        "--bind", "127.0.0.1:{port}",
    ],
    "uvicorn-django-asgi": [
        "uvicorn", "examples.django_app:asgi_application", "--lifespan", "off",
        "--port", "{port}",
    ],
    "hypercorn-quart": [
        "hypercorn", "examples.quart_app:app", "--bind", "127.0.0.1:{port}",
    ],
    "hypercorn-litestar": [
        "hypercorn", "examples.litestar_app:app", "--bind", "127.0.0.1:{port}",
    ],
    "hypercorn-starlette": [
        "hypercorn", "examples.starlette_app:app", "--bind", "127.0.0.1:{port}",
    ],
    "gunicorn-django-wsgi": [
        "gunicorn", "examples.django_app:application", "--bind", "127.0.0.1:{port}",
        "--workers", "1",
    ],
    "werkzeug-flask": [
        "flask", "--app", "examples.flask_app", "run", "--host", "127.0.0.1",
        "--port", "{port}",
    ],
}  # fmt: skip
WEBSOCKET_SERVERS = ["uvicorn-fastapi", "hypercorn-quart", "hypercorn-litestar"]


@pytest.fixture(scope="module", params=list(SERVERS))
def server(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> Iterator[ServerProcess]:
    with ServerProcess(SERVERS[request.param], redis_server.url) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_server_login_then_me(client: httpx.Client, server: ServerProcess) -> None:
    token = login_over_http(client, ALICE)

    response = client.get("/me", headers=bearer(token))

    assert response.status_code == 200, server.log_tail()
    assert "alice" in response.json().values()


def test_server_me_without_token_is_401(client: httpx.Client) -> None:
    response = client.get("/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'


def test_server_reports_needs_scope(client: httpx.Client) -> None:
    bob = login_over_http(client, BOB)

    assert client.get("/reports", headers=bearer(bob)).status_code == 403


def test_server_logout_ends_session(client: httpx.Client) -> None:
    token = login_over_http(client, ALICE)

    assert client.post("/logout", headers=bearer(token)).status_code == 200
    assert client.get("/me", headers=bearer(token)).status_code == 401


def test_server_ignores_remote_user_header(client: httpx.Client) -> None:
    response = client.get("/me", headers={"Remote-User": "alice"})

    assert response.status_code == 401


@pytest.fixture(scope="module", params=WEBSOCKET_SERVERS)
def websocket_server(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> Iterator[ServerProcess]:
    with ServerProcess(SERVERS[request.param], redis_server.url) as process:
        yield process


def test_server_websocket_handshake_with_token(
    websocket_server: ServerProcess, redis_url: str
) -> None:
    with httpx.Client(base_url=websocket_server.url) as client:
        token = login_over_http(client, ALICE)

    status = websocket_handshake_status(websocket_server.port, "/ws", bearer(token))

    assert status == 101, websocket_server.log_tail()


def test_server_websocket_handshake_without_token(
    websocket_server: ServerProcess, redis_url: str
) -> None:
    status = websocket_handshake_status(websocket_server.port, "/ws")

    assert status in {401, 403}, websocket_server.log_tail()


def test_uvicorn_root_path_rules_match_below_prefix(
    redis_server: RedisServer, redis_url: str
) -> None:
    command = [*SERVERS["uvicorn-fastapi"], "--root-path", "/api"]
    with (
        ServerProcess(command, redis_server.url) as process,
        httpx.Client(base_url=process.url) as client,
    ):
        # A proxy that strips /api forwards /api/login as /login.
        token = login_over_http(client, ALICE)
        anonymous = client.get("/me")
        authenticated = client.get("/me", headers=bearer(token))

    assert anonymous.status_code == 401
    assert authenticated.json()["user"] == "alice"
