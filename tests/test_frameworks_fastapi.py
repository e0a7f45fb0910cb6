"""The FastAPI example through FastAPI's test client, on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from examples import fastapi_app
from tests.framework_support import ALICE, BOB, bearer, login_over_http


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    with TestClient(fastapi_app.create_app(redis_url)) as client:
        yield client


def test_fastapi_me_reads_user_and_dependency(client: TestClient) -> None:
    token = login_over_http(client, ALICE)

    response = client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == "alice"
    assert body["scopes"] == ["authenticated", "reports:read"]
    assert body["session_id"]


def test_fastapi_dependency_rejects_anonymous(client: TestClient) -> None:
    response = client.get("/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'


def test_fastapi_bad_token_rejected_by_middleware(client: TestClient) -> None:
    response = client.get("/me", headers=bearer("not-a-token"))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_fastapi_index_anonymous_user(client: TestClient) -> None:
    assert client.get("/").json() == {"user": None}


def test_fastapi_scope_dependency(client: TestClient) -> None:
    alice = login_over_http(client, ALICE)
    bob = login_over_http(client, BOB)

    assert client.get("/reports", headers=bearer(bob)).status_code == 403
    assert client.get("/reports", headers=bearer(alice)).status_code == 200


def test_fastapi_login_wrong_password_is_401(client: TestClient) -> None:
    response = client.post("/login", json={"username": "bob", "password": "x"})

    assert response.status_code == 401


def test_fastapi_logout_ends_session(client: TestClient) -> None:
    token = login_over_http(client, ALICE)

    assert client.post("/logout", headers=bearer(token)).json() == {"logged_out": True}
    assert client.get("/me", headers=bearer(token)).status_code == 401


def test_fastapi_websocket_reads_user_and_dependency(client: TestClient) -> None:
    token = login_over_http(client, BOB)

    with client.websocket_connect("/ws", headers=bearer(token)) as websocket:
        assert websocket.receive_json() == {"user": "bob", "session_user": "bob"}


def test_fastapi_websocket_without_token_closes_1008(client: TestClient) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws") as websocket,
    ):
        websocket.receive_json()

    assert closed.value.code == 1008


def test_fastapi_module_app_runs_on_fakeredis() -> None:
    with TestClient(fastapi_app.app) as client:
        token = login_over_http(client, BOB)

        assert client.get("/me", headers=bearer(token)).json()["user"] == "bob"
