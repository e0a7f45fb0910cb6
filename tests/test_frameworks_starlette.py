"""The Starlette example through Starlette's test client, on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from bearer_mw import AsyncBearerMiddleware
from examples import starlette_app
from examples.demo_support import async_store
from tests.framework_support import ALICE, BOB, bearer, login_over_http


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    with TestClient(starlette_app.create_app(redis_url)) as client:
        yield client


def test_starlette_me_reads_request_user(client: TestClient) -> None:
    token = login_over_http(client, ALICE)

    response = client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == "alice"
    assert body["scopes"] == ["authenticated", "reports:read"]


def test_starlette_me_without_token_is_401(client: TestClient) -> None:
    response = client.get("/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'


def test_starlette_index_anonymous_user(client: TestClient) -> None:
    assert client.get("/").json() == {"user": None}


def test_starlette_requires_checks_scope(client: TestClient) -> None:
    alice = login_over_http(client, ALICE)
    bob = login_over_http(client, BOB)

    assert client.get("/reports").status_code == 403
    assert client.get("/reports", headers=bearer(bob)).status_code == 403
    assert client.get("/reports", headers=bearer(alice)).status_code == 200


def test_starlette_logout_ends_session(client: TestClient) -> None:
    token = login_over_http(client, ALICE)

    assert client.post("/logout", headers=bearer(token)).json() == {"logged_out": True}
    assert client.get("/me", headers=bearer(token)).status_code == 401


def test_starlette_websocket_reads_user(client: TestClient) -> None:
    token = login_over_http(client, ALICE)

    with client.websocket_connect("/ws", headers=bearer(token)) as websocket:
        assert websocket.receive_json() == {"user": "alice"}


def test_starlette_websocket_requires_scope(client: TestClient) -> None:
    token = login_over_http(client, BOB)

    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws", headers=bearer(token)) as websocket,
    ):
        websocket.receive_json()


def test_starlette_websocket_bad_token_is_401(client: TestClient) -> None:
    with (
        pytest.raises(WebSocketDenialResponse) as denial,
        client.websocket_connect("/ws", headers=bearer("not-a-token")),
    ):
        pass

    assert denial.value.status_code == 401


def test_starlette_module_app_runs_on_fakeredis() -> None:
    with TestClient(starlette_app.app) as client:
        token = login_over_http(client, BOB)

        assert client.get("/me", headers=bearer(token)).json()["user"] == "bob"


def test_starlette_requires_authenticated_allows_session(redis_url: str) -> None:
    store = async_store(redis_url)

    @requires("authenticated")
    async def home(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name})

    app = Starlette(
        routes=[Route("/", home)],
        middleware=[Middleware(AsyncBearerMiddleware, store=store)],
    )
    with TestClient(app) as client:
        token = client.portal.call(store.create_session, "alice")[0]  # type: ignore[union-attr]
        response = client.get("/", headers=bearer(token))
        client.portal.call(store.client.aclose)  # type: ignore[union-attr]

    assert response.status_code == 200
