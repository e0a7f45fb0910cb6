"""The Litestar example through Litestar's test client, on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from examples import litestar_app
from tests.framework_support import ALICE, BOB, bearer, login_over_http


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient[Litestar]]:
    with TestClient(litestar_app.create_app(redis_url)) as client:
        yield client


def test_litestar_me_reads_request_user(client: TestClient[Litestar]) -> None:
    token = login_over_http(client, ALICE)

    response = client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == "alice"
    assert body["scopes"] == ["authenticated", "reports:read"]
    assert body["session_id"]


def test_litestar_me_without_token_is_401(client: TestClient[Litestar]) -> None:
    response = client.get("/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'


def test_litestar_index_anonymous_user(client: TestClient[Litestar]) -> None:
    assert client.get("/").json() == {"user": None}


def test_litestar_guard_checks_scope(client: TestClient[Litestar]) -> None:
    alice = login_over_http(client, ALICE)
    bob = login_over_http(client, BOB)

    assert client.get("/reports", headers=bearer(bob)).status_code == 403
    assert client.get("/reports", headers=bearer(alice)).status_code == 200


def test_litestar_logout_ends_session(client: TestClient[Litestar]) -> None:
    token = login_over_http(client, ALICE)

    assert client.post("/logout", headers=bearer(token)).json() == {"logged_out": True}
    assert client.get("/me", headers=bearer(token)).status_code == 401


def test_litestar_websocket_reads_user(client: TestClient[Litestar]) -> None:
    token = login_over_http(client, ALICE)

    with client.websocket_connect("/ws", headers=bearer(token)) as websocket:
        assert websocket.receive_json() == {"user": "alice"}


def test_litestar_websocket_without_token_closes_1008(
    client: TestClient[Litestar],
) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws") as websocket,
    ):
        websocket.receive_json()

    assert closed.value.code == 1008


def test_litestar_module_app_runs_on_fakeredis() -> None:
    with TestClient(litestar_app.app) as client:
        token = login_over_http(client, BOB)

        assert client.get("/me", headers=bearer(token)).json()["user"] == "bob"
