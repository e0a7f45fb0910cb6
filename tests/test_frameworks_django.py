"""The Django example under WSGI and ASGI, on a real Redis.

Django's own test client calls Django's handler directly, below any WSGI or
ASGI middleware, so these tests drive the wrapped applications with
Werkzeug's WSGI test client and with httpx over ASGI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis
from werkzeug.test import Client

from bearer_mw import SessionStore
from examples import django_app
from tests.framework_support import ALICE, BOB, bearer


@pytest.fixture
def wsgi_client(redis_url: str) -> Client:
    return Client(django_app.create_wsgi_application(redis_url))


@pytest.fixture
async def asgi_client(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = django_app.create_asgi_application(redis_url)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as client:
        yield client
    await app.store.client.aclose()


def wsgi_login(client: Client, account: dict[str, str]) -> str:
    response = client.post("/login", json=account)
    assert response.status_code == 200
    token: str = response.json["access_token"]
    return token


async def asgi_login(client: httpx.AsyncClient, account: dict[str, str]) -> str:
    response = await client.post("/login", json=account)
    assert response.status_code == 200
    token: str = response.json()["access_token"]
    return token


def test_django_wsgi_me_reads_remote_user(wsgi_client: Client) -> None:
    token = wsgi_login(wsgi_client, ALICE)

    response = wsgi_client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json == {
        "remote_user": "alice",
        "user": "alice",
        "is_authenticated": True,
        "scopes": ["reports:read"],
    }


def test_django_wsgi_creates_django_user(wsgi_client: Client) -> None:
    from django.contrib.auth.models import User  # noqa: PLC0415 - needs settings

    User.objects.filter(username="bob").delete()
    token = wsgi_login(wsgi_client, BOB)

    wsgi_client.get("/me", headers=bearer(token))

    assert User.objects.filter(username="bob").exists()


def test_django_wsgi_me_without_token_is_401(wsgi_client: Client) -> None:
    response = wsgi_client.get("/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_django_wsgi_anonymous_index(wsgi_client: Client) -> None:
    response = wsgi_client.get("/")

    assert response.json == {"remote_user": None, "user": None}


def test_django_wsgi_session_cookie_alone_is_anonymous(wsgi_client: Client) -> None:
    token = wsgi_login(wsgi_client, ALICE)
    wsgi_client.get("/me", headers=bearer(token))
    assert wsgi_client.get_cookie("sessionid") is not None

    response = wsgi_client.get("/")

    assert response.json == {"remote_user": None, "user": None}


def test_django_wsgi_reports_needs_scope(wsgi_client: Client) -> None:
    alice = wsgi_login(wsgi_client, ALICE)
    bob = wsgi_login(wsgi_client, BOB)

    assert wsgi_client.get("/reports", headers=bearer(bob)).status_code == 403
    assert wsgi_client.get("/reports", headers=bearer(alice)).status_code == 200


def test_django_wsgi_logout_ends_session(wsgi_client: Client) -> None:
    token = wsgi_login(wsgi_client, ALICE)

    response = wsgi_client.post("/logout", headers=bearer(token))

    assert response.json == {"logged_out": True}
    assert wsgi_client.get("/me", headers=bearer(token)).status_code == 401


def test_django_wsgi_accepts_token_from_same_redis(
    wsgi_client: Client, redis_url: str
) -> None:
    store = SessionStore(redis.Redis.from_url(redis_url))
    token, _ = store.create_session("carol")

    response = wsgi_client.get("/me", headers=bearer(token))

    assert response.json["user"] == "carol"


@pytest.mark.anyio
async def test_django_asgi_me_reads_remote_user(
    asgi_client: httpx.AsyncClient,
) -> None:
    token = await asgi_login(asgi_client, ALICE)

    response = await asgi_client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {
        "remote_user": "alice",
        "user": "alice",
        "is_authenticated": True,
        "scopes": ["reports:read"],
    }


@pytest.mark.anyio
async def test_django_asgi_me_without_token_is_401(
    asgi_client: httpx.AsyncClient,
) -> None:
    response = await asgi_client.get("/me")

    assert response.status_code == 401


@pytest.mark.anyio
async def test_django_asgi_ignores_remote_user_header(
    asgi_client: httpx.AsyncClient,
) -> None:
    response = await asgi_client.get("/", headers={"Remote-User": "alice"})

    assert response.json() == {"remote_user": None, "user": None}


@pytest.mark.anyio
async def test_django_asgi_reports_needs_scope(
    asgi_client: httpx.AsyncClient,
) -> None:
    alice = await asgi_login(asgi_client, ALICE)
    bob = await asgi_login(asgi_client, BOB)

    denied = await asgi_client.get("/reports", headers=bearer(bob))
    allowed = await asgi_client.get("/reports", headers=bearer(alice))

    assert denied.status_code == 403
    assert allowed.status_code == 200


@pytest.mark.anyio
async def test_django_asgi_logout_ends_session(
    asgi_client: httpx.AsyncClient,
) -> None:
    token = await asgi_login(asgi_client, ALICE)

    response = await asgi_client.post("/logout", headers=bearer(token))

    assert response.json() == {"logged_out": True}
    assert (await asgi_client.get("/me", headers=bearer(token))).status_code == 401


def test_django_module_application_runs_on_fakeredis() -> None:
    client = Client(django_app.application)
    # Earlier tests pointed the login view at the test Redis; this points it
    # back at fakeredis, whose one fake server the module's app also uses.
    django_app.create_wsgi_application(None)
    token = wsgi_login(client, BOB)

    assert client.get("/me", headers=bearer(token)).json["user"] == "bob"
