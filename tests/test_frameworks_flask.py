"""The Flask example through Flask's test client, on a real Redis."""

from __future__ import annotations

import pytest
import redis
from flask.testing import FlaskClient

from bearer_mw import SessionStore
from examples import flask_app
from tests.framework_support import ALICE, BOB, bearer


@pytest.fixture
def client(redis_url: str) -> FlaskClient:
    return flask_app.create_app(redis_url).test_client()


def login(client: FlaskClient, account: dict[str, str]) -> str:
    response = client.post("/login", json=account)
    assert response.status_code == 200
    token: str = response.get_json()["access_token"]
    return token


def test_flask_me_reads_remote_user(client: FlaskClient) -> None:
    token = login(client, ALICE)

    response = client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.get_json() == {
        "user": "alice",
        "auth_type": "Bearer",
        "scopes": ["reports:read"],
    }


def test_flask_me_without_token_is_401(client: FlaskClient) -> None:
    response = client.get("/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_flask_index_anonymous_and_authenticated(client: FlaskClient) -> None:
    token = login(client, BOB)

    assert client.get("/").get_json() == {"user": None}
    assert client.get("/", headers=bearer(token)).get_json() == {"user": "bob"}


def test_flask_reports_needs_scope(client: FlaskClient) -> None:
    alice = login(client, ALICE)
    bob = login(client, BOB)

    denied = client.get("/reports", headers=bearer(bob))
    allowed = client.get("/reports", headers=bearer(alice))

    assert denied.status_code == 403
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    assert allowed.status_code == 200


def test_flask_login_wrong_password_is_401(client: FlaskClient) -> None:
    response = client.post("/login", json={"username": "alice", "password": "no"})

    assert response.status_code == 401


def test_flask_logout_ends_session(client: FlaskClient) -> None:
    token = login(client, ALICE)

    response = client.post("/logout", headers=bearer(token))

    assert response.get_json() == {"logged_out": True}
    assert client.get("/me", headers=bearer(token)).status_code == 401


def test_flask_accepts_token_from_same_redis(
    client: FlaskClient, redis_url: str
) -> None:
    store = SessionStore(redis.Redis.from_url(redis_url))
    token, _ = store.create_session("carol", {"scopes": []})

    response = client.get("/me", headers=bearer(token))

    assert response.get_json()["user"] == "carol"


def test_flask_module_app_runs_on_fakeredis() -> None:
    client = flask_app.app.test_client()
    token = login(client, BOB)

    assert client.get("/me", headers=bearer(token)).get_json()["user"] == "bob"
