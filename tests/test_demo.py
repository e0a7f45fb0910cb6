"""Tests of the demo apps, in process, on fakeredis and on a real Redis server.

Every behaviour test runs four times: the WSGI app through Werkzeug's test
client and the ASGI app through httpx's ASGI transport, each over fakeredis
and over the ``redis_url`` server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import fakeredis
import httpx
import pytest
from werkzeug.test import Client

from bearer_mw import AsyncSessionStore, SessionStore
from bearer_mw.__main__ import main
from bearer_mw.client import redis_from_url
from bearer_mw.demo import create_asgi_app, create_wsgi_app
from bearer_mw.demo.endpoints import MAX_LOGIN_BODY
from bearer_mw.demo.server import base_url, curl_lines, describe_redis_url
from tests.redis_servers import free_port

ACTIVE_SECONDS = 600
IDLE_SECONDS = 3600


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class DemoClient(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply: ...


def request_headers(
    token: str | None, headers: dict[str, str] | None
) -> dict[str, str]:
    merged = dict(headers or {})
    if token is not None:
        merged["Authorization"] = f"Bearer {token}"
    return merged


class WSGIDemoClient:
    def __init__(self, store: SessionStore) -> None:
        self.client = Client(create_wsgi_app(store))

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        options: dict[str, Any] = {"headers": request_headers(token, headers)}
        if json_body is not None:
            options["json"] = json_body
        elif form is not None:
            options["data"] = form
        elif content is not None:
            options["data"] = content
        response = self.client.open(path, method=method, **options)
        reply_headers = {name.lower(): value for name, value in response.headers}
        return Reply(response.status_code, reply_headers, response.get_data())


class ASGIDemoClient:
    def __init__(self, store: AsyncSessionStore, runner: asyncio.Runner) -> None:
        self.runner = runner
        transport = httpx.ASGITransport(app=create_asgi_app(store))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://demo")

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        options: dict[str, Any] = {"headers": request_headers(token, headers)}
        if json_body is not None:
            options["json"] = json_body
        elif form is not None:
            options["data"] = form
        elif content is not None:
            options["content"] = content
        response = self.runner.run(self.client.request(method, path, **options))
        reply_headers = {
            name.lower(): value for name, value in response.headers.items()
        }
        return Reply(response.status_code, reply_headers, response.content)


PERIODS = {"active_period": ACTIVE_SECONDS, "idle_period": IDLE_SECONDS}


@pytest.fixture(
    params=[
        pytest.param(("wsgi", "fakeredis"), id="wsgi-fakeredis"),
        pytest.param(("wsgi", "redis"), id="wsgi-redis"),
        pytest.param(("asgi", "fakeredis"), id="asgi-fakeredis"),
        pytest.param(("asgi", "redis"), id="asgi-redis"),
    ]
)
def demo(request: pytest.FixtureRequest) -> Iterator[DemoClient]:
    variant, backend = request.param
    url = request.getfixturevalue("redis_url") if backend == "redis" else None

    if variant == "wsgi":
        client = fakeredis.FakeRedis() if url is None else redis_from_url(url)
        yield WSGIDemoClient(SessionStore(client, **PERIODS))
        client.close()
        return

    with asyncio.Runner() as runner:
        async_client = (
            fakeredis.FakeAsyncRedis()
            if url is None
            else redis_from_url(url, asyncio=True)
        )
        asgi_client = ASGIDemoClient(AsyncSessionStore(async_client, **PERIODS), runner)
        yield asgi_client
        runner.run(asgi_client.client.aclose())
        runner.run(async_client.aclose())


def log_in(demo: DemoClient, user: str = "alice") -> str:
    reply = demo.request("POST", "/login", json_body={"user": user})
    assert reply.status == 200, reply.body
    token: str = reply.json()["access_token"]
    return token


def test_login_json_returns_token(demo: DemoClient) -> None:
    reply = demo.request("POST", "/login", json_body={"user": "alice"})
    document = reply.json()

    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["cache-control"] == "no-store"
    assert document["token_type"] == "Bearer"
    assert isinstance(document["access_token"], str)
    assert ACTIVE_SECONDS - 2 <= document["expires_in"] <= ACTIVE_SECONDS
    assert document["active_expires_at"].endswith("Z")
    assert document["idle_expires_at"] > document["active_expires_at"]


def test_login_form_field(demo: DemoClient) -> None:
    reply = demo.request("POST", "/login", form={"user": "bob", "scopes": "read"})
    token = reply.json()["access_token"]
    session = demo.request("GET", "/me", token=token).json()

    assert reply.status == 200
    assert session["user_id"] == "bob"
    assert session["attributes"] == {"scopes": "read"}


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        pytest.param(b'{"name": "alice"}', "application/json", 400, id="no-user"),
        pytest.param(b'{"user": ""}', "application/json", 400, id="empty-user"),
        pytest.param(b'{"user": 7}', "application/json", 400, id="number-user"),
        pytest.param(b'{"user": "a\\nb"}', "application/json", 400, id="newline"),
        pytest.param(b'["alice"]', "application/json", 400, id="json-array"),
        pytest.param(b"{not json", "application/json", 400, id="bad-json"),
        pytest.param(b"user=alice", "text/plain", 415, id="text-plain"),
        pytest.param(b"user=alice", "", 415, id="no-content-type"),
        pytest.param(
            b'{"user": "alice", "scopes": ["a"]}',
            "application/json",
            400,
            id="scopes-list",
        ),
        pytest.param(
            json.dumps({"user": "x" * 129}).encode(),
            "application/json",
            400,
            id="long-user",
        ),
        pytest.param(
            b"user=" + b"a" * MAX_LOGIN_BODY,
            "application/x-www-form-urlencoded",
            413,
            id="body-too-large",
        ),
    ],
)
def test_login_rejects_bad_body(
    demo: DemoClient, content: bytes, content_type: str, status: int
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    reply = demo.request("POST", "/login", content=content, headers=headers)

    assert reply.status == status
    assert reply.json()["error"] == "invalid_request"
    assert "access_token" not in reply.json()


def test_login_get_not_allowed(demo: DemoClient) -> None:
    reply = demo.request("GET", "/login")

    assert reply.status == 405
    assert reply.headers["allow"] == "POST"


def test_me_returns_session_without_token(demo: DemoClient) -> None:
    token = log_in(demo)
    reply = demo.request("GET", "/me", token=token)
    session = reply.json()

    assert reply.status == 200
    assert token.encode() not in reply.body
    assert token.split(".")[1].encode() not in reply.body
    assert session["user_id"] == "alice"
    assert session["state"] == "active"
    assert session["attributes"] == {}
    assert set(session) == {
        "session_id",
        "user_id",
        "attributes",
        "state",
        "created_at",
        "active_expires_at",
        "idle_expires_at",
    }


def test_me_without_token_rejected(demo: DemoClient) -> None:
    reply = demo.request("GET", "/me")

    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer ")


def test_me_with_unknown_token_rejected(demo: DemoClient) -> None:
    reply = demo.request("GET", "/me", token="AAAAAAAAAAAA." + "A" * 43)

    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


def test_renew_rotates_token(demo: DemoClient) -> None:
    old = log_in(demo)
    old_session = demo.request("GET", "/me", token=old).json()

    reply = demo.request("POST", "/renew", token=old)
    new = reply.json()["access_token"]
    new_session = demo.request("GET", "/me", token=new)

    assert reply.status == 200
    assert new != old
    assert demo.request("GET", "/me", token=old).status == 401
    assert new_session.status == 200
    assert new_session.json()["user_id"] == "alice"
    assert new_session.json()["session_id"] != old_session["session_id"]


def test_renew_repeated_within_grace(demo: DemoClient) -> None:
    old = log_in(demo)

    first = demo.request("POST", "/renew", token=old).json()["access_token"]
    again = demo.request("POST", "/renew", token=old)

    assert again.status == 200
    assert again.json()["access_token"] == first


def test_logout_ends_session(demo: DemoClient) -> None:
    token = log_in(demo)

    reply = demo.request("POST", "/logout", token=token)

    assert reply.status == 204
    assert reply.body == b""
    assert (
        "content-length" not in reply.headers or reply.headers["content-length"] == "0"
    )
    assert demo.request("GET", "/me", token=token).status == 401
    assert demo.request("POST", "/logout", token=token).status == 401


def test_logout_all_ends_user_sessions(demo: DemoClient) -> None:
    first = log_in(demo, "alice")
    second = log_in(demo, "alice")
    other = log_in(demo, "bob")

    reply = demo.request("POST", "/logout-all", token=first)

    assert reply.status == 200
    assert reply.json() == {"ended_sessions": 2}
    assert demo.request("GET", "/me", token=second).status == 401
    assert demo.request("GET", "/me", token=other).status == 200


def test_unknown_path_needs_session_first(demo: DemoClient) -> None:
    token = log_in(demo)

    assert demo.request("GET", "/nowhere").status == 401
    assert demo.request("GET", "/nowhere", token=token).status == 404
    assert demo.request("DELETE", "/me", token=token).status == 405


def test_index_is_public(demo: DemoClient) -> None:
    reply = demo.request("GET", "/")

    assert reply.status == 200
    assert "POST /login" in reply.json()["endpoints"]
    assert "trusts the user name" in reply.json()["about"]


def test_request_log_names_user_not_token(
    demo: DemoClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bearer_mw.demo")
    token = log_in(demo, "carol")
    demo.request("GET", "/me", token=token)
    demo.request("GET", "/me", token=token + "x")
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.name == "bearer_mw.demo"
    ]

    assert lines[0].startswith("POST /login 200 user=carol ")
    assert lines[1].startswith("GET /me 200 user=carol ")
    assert lines[2].startswith("GET /me 400 user=- ") or lines[2].startswith(
        "GET /me 401 user=- "
    )
    assert all(token not in record.getMessage() for record in caplog.records)
    assert all(token not in str(record.args) for record in caplog.records)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"user": "\\ud800"}', id="lone-surrogate"),
        pytest.param(b'{"user": "ad\\u202emin"}', id="right-to-left-override"),
        pytest.param(b'{"user": "   "}', id="blank"),
        pytest.param(b"[" * 2000 + b"]" * 2000, id="deeply-nested"),
        pytest.param(b'{"user": ' + b"[" * 2000 + b"]" * 2000 + b"}", id="nested-user"),
    ],
)
def test_login_rejects_hostile_body(demo: DemoClient, content: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    reply = demo.request("POST", "/login", content=content, headers=headers)

    assert reply.status == 400
    assert "access_token" not in reply.json()


def test_request_log_escapes_forged_line(
    demo: DemoClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bearer_mw.demo")
    demo.request("GET", "/x%0aINFO%20bearer_mw.demo:%20POST%20/login%20200")
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.name == "bearer_mw.demo"
    ]

    assert len(lines) == 1
    assert "\n" not in lines[0]
    assert "\\n" in lines[0]


@pytest.mark.parametrize("variant", ["wsgi", "asgi"])
def test_store_outage_answers_503(variant: str) -> None:
    # Nothing listens on a port that was just free, so every call fails.
    url = f"redis://127.0.0.1:{free_port()}/0"
    if variant == "wsgi":
        demo: DemoClient = WSGIDemoClient(
            SessionStore(redis_from_url(url, timeout=0.5))
        )
        login = demo.request("POST", "/login", json_body={"user": "alice"})
        me = demo.request("GET", "/me", token="AAAAAAAAAAAA." + "A" * 43)
    else:
        with asyncio.Runner() as runner:
            client = redis_from_url(url, timeout=0.5, asyncio=True)
            demo = ASGIDemoClient(AsyncSessionStore(client), runner)
            login = demo.request("POST", "/login", json_body={"user": "alice"})
            me = demo.request("GET", "/me", token="AAAAAAAAAAAA." + "A" * 43)
            runner.run(client.aclose())

    assert login.status == 503
    assert login.headers["retry-after"] == "1"
    assert login.json()["error"] == "temporarily_unavailable"
    assert me.status == 503


def test_asgi_lifespan_closes_client() -> None:
    client = fakeredis.FakeAsyncRedis()
    app = create_asgi_app(AsyncSessionStore(client), close_client_on_shutdown=True)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []
    closed: list[bool] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def aclose() -> None:
        closed.append(True)

    client.aclose = aclose  # type: ignore[method-assign]
    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))

    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert closed == [True]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("127.0.0.1", "http://127.0.0.1:8000", id="ipv4"),
        pytest.param("::1", "http://[::1]:8000", id="ipv6"),
        pytest.param("0.0.0.0", "http://127.0.0.1:8000", id="ipv4-wildcard"),
        pytest.param("::", "http://[::1]:8000", id="ipv6-wildcard"),
        pytest.param("localhost", "http://localhost:8000", id="name"),
    ],
)
def test_base_url_for_host(host: str, expected: str) -> None:
    assert base_url(host, 8000) == expected


def test_curl_lines_use_placeholder() -> None:
    lines = curl_lines("http://127.0.0.1:8123")
    commands = [line for line in lines if not line.startswith("#")]

    assert len(commands) == 4
    assert all("http://127.0.0.1:8123/" in line for line in commands)
    assert [line.split("http://127.0.0.1:8123")[1].split()[0] for line in commands] == [
        "/login",
        "/me",
        "/renew",
        "/logout",
    ]
    assert all('"Authorization: Bearer $TOKEN"' in line for line in commands[1:])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("redis://:pw@10.0.0.5:6380/2", "redis://10.0.0.5:6380", id="tcp"),
        pytest.param(
            "rediss://user:pw@cache.internal/0", "rediss://cache.internal", id="tls"
        ),
        pytest.param(
            "unix://:pw@/run/redis.sock?db=1", "unix:///run/redis.sock", id="unix"
        ),
    ],
)
def test_describe_redis_url_hides_password(url: str, expected: str) -> None:
    assert describe_redis_url(url) == expected


def test_main_rejects_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["demo", "--port", "70000"])

    assert caught.value.code == 2
    assert "port must be between 0 and 65535" in capsys.readouterr().err


def test_main_unsupported_redis_url(caplog: pytest.LogCaptureFixture) -> None:
    status = main(["demo", "--redis-url", "memcached://user:secret@127.0.0.1:1"])

    assert status == 1
    assert "unsupported Redis URL scheme" in caplog.text
    assert "secret" not in caplog.text


def test_main_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    status = main(["demo", "--redis-url", f"redis://127.0.0.1:{port}/0"])

    assert status == 1
    assert f"cannot reach Redis at redis://127.0.0.1:{port}" in caplog.text
