"""The Quart example through Quart's test client, on a real Redis.

Quart's test client never sends the ``websocket.connect`` event that ASGI
servers send first, and bearer_mw waits for it before rejecting a handshake,
so websocket rejections are tested against hypercorn in
``test_frameworks_servers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from quart.typing import TestClientProtocol as QuartClient

from examples import quart_app
from tests.framework_support import ALICE, BOB, bearer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[QuartClient]:
    app = quart_app.create_app(redis_url)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def login(client: QuartClient, account: dict[str, str]) -> str:
    response = await client.post("/login", json=account)
    assert response.status_code == 200
    token: str = (await response.get_json())["access_token"]
    return token


async def test_quart_me_reads_request_scope(client: QuartClient) -> None:
    token = await login(client, ALICE)

    response = await client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    body = await response.get_json()
    assert body["user"] == "alice"
    assert body["scopes"] == ["authenticated", "reports:read"]


async def test_quart_me_without_token_is_401(client: QuartClient) -> None:
    response = await client.get("/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


async def test_quart_index_anonymous_user(client: QuartClient) -> None:
    response = await client.get("/")

    assert await response.get_json() == {"user": None}


async def test_quart_reports_needs_scope(client: QuartClient) -> None:
    alice = await login(client, ALICE)
    bob = await login(client, BOB)

    assert (await client.get("/reports", headers=bearer(bob))).status_code == 403
    assert (await client.get("/reports", headers=bearer(alice))).status_code == 200


async def test_quart_logout_ends_session(client: QuartClient) -> None:
    token = await login(client, ALICE)

    response = await client.post("/logout", headers=bearer(token))

    assert await response.get_json() == {"logged_out": True}
    assert (await client.get("/me", headers=bearer(token))).status_code == 401


async def test_quart_websocket_reads_scope_user(client: QuartClient) -> None:
    token = await login(client, BOB)

    async with client.websocket("/ws", headers=bearer(token)) as websocket:
        assert await websocket.receive_json() == {"user": "bob"}
