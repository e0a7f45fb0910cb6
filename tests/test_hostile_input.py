"""Hostile inputs against the parser, route rules, middlewares and store."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import fakeredis
import fakeredis.aioredis
import pytest
import redis
from werkzeug.test import Client

from bearer_mw import (
    AsyncBearerMiddleware,
    AsyncSessionStore,
    BearerMiddleware,
    ConfigurationError,
    Rule,
    SessionStore,
)
from bearer_mw.records import KeySpace

DOCS = Path(__file__).resolve().parent.parent / "docs"


def ok_wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served"]


def wsgi_status(middleware: BearerMiddleware, method: str, path: str) -> int:
    response = Client(middleware).open(path, method=method)
    status = response.status_code
    response.close()
    return status


def run_asgi(
    middleware: AsyncBearerMiddleware,
    scope: dict[str, Any],
    messages: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Drive one connection through ``middleware`` and return what it sent."""
    sent: list[dict[str, Any]] = []
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent


def http_scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }


def response_status(sent: list[dict[str, Any]]) -> int:
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1
    return int(starts[0]["status"])


class ScopeRecorder:
    """An ASGI app that accepts websockets and responds 200 to HTTP requests."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})


# Route rules


def test_rule_methods_as_string() -> None:
    # A plain string must not be split into one-letter methods.
    try:
        rule = Rule("/orders", methods="POST")
    except TypeError:
        return

    assert rule.matches("/orders", "POST")
    assert not rule.matches("/orders", "P")


def test_wsgi_rule_lowercase_method_requires_session() -> None:
    # Werkzeug and Django upper-case REQUEST_METHOD before routing, so a
    # "delete" request runs the DELETE view.
    middleware = BearerMiddleware(
        ok_wsgi_app,
        SessionStore(fakeredis.FakeRedis()),
        rules=[Rule("/items/*", methods=["DELETE"])],
    )

    assert wsgi_status(middleware, "DELETE", "/items/1") == 401
    assert wsgi_status(middleware, "delete", "/items/1") == 401


def test_wsgi_get_rule_covers_head() -> None:
    middleware = BearerMiddleware(
        ok_wsgi_app,
        SessionStore(fakeredis.FakeRedis()),
        rules=[Rule("/private", methods=["GET"])],
    )

    assert wsgi_status(middleware, "GET", "/private") == 401
    assert wsgi_status(middleware, "HEAD", "/private") == 401


def test_asgi_get_rule_covers_head() -> None:
    middleware = AsyncBearerMiddleware(
        ScopeRecorder(),
        AsyncSessionStore(fakeredis.aioredis.FakeRedis()),
        rules=[Rule("/private", methods=["GET"])],
    )

    get = run_asgi(middleware, http_scope("GET", "/private"), [])
    head = run_asgi(middleware, http_scope("HEAD", "/private"), [])

    assert response_status(get) == 401
    assert response_status(head) == 401


def test_rule_inner_globstar_matches_zero_segments() -> None:
    rule = Rule("/api/**/admin")

    assert rule.matches("/api/v1/admin", "GET")
    assert rule.matches("/api/admin", "GET")


# Middleware settings


def test_middleware_max_header_length_zero_rejected() -> None:
    store = SessionStore(fakeredis.FakeRedis())

    with pytest.raises(ConfigurationError):
        BearerMiddleware(ok_wsgi_app, store, max_header_length=0)


# Websocket tokens in the query string


def websocket_scope(query: bytes) -> dict[str, Any]:
    return {"type": "websocket", "path": "/ws", "headers": [], "query_string": query}


def test_query_token_keeps_other_parameters() -> None:
    server = fakeredis.FakeServer()
    token, _ = SessionStore(fakeredis.FakeRedis(server=server)).create_session("ada")
    app = ScopeRecorder()
    middleware = AsyncBearerMiddleware(
        app,
        AsyncSessionStore(fakeredis.aioredis.FakeRedis(server=server)),
        required=True,
        websocket_token="query",
    )
    query = b"raw=%E9&flag&access_token=" + token.encode() + b"&name=x%20y"

    sent = run_asgi(middleware, websocket_scope(query), [{"type": "websocket.connect"}])

    assert [m["type"] for m in sent] == ["websocket.accept"]
    assert app.scopes[0]["query_string"] == b"raw=%E9&flag&name=x%20y"


def test_query_token_with_encoded_name_hidden_from_app() -> None:
    server = fakeredis.FakeServer()
    token, _ = SessionStore(fakeredis.FakeRedis(server=server)).create_session("ada")
    app = ScopeRecorder()
    middleware = AsyncBearerMiddleware(
        app,
        AsyncSessionStore(fakeredis.aioredis.FakeRedis(server=server)),
        websocket_token="query",
    )
    # parse_qsl and every framework decode "access%5Ftoken" to "access_token".
    query = b"access%5Ftoken=" + token.encode()

    run_asgi(middleware, websocket_scope(query), [{"type": "websocket.connect"}])

    assert len(app.scopes) == 1
    assert token.encode() not in app.scopes[0]["query_string"]


# Store


def test_find_session_deeply_nested_record_returns_none(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = SessionStore(client)
    token, _ = store.create_session("ada")
    keys = KeySpace().for_token(token)
    record = client.get(keys.session)
    assert record is not None
    head, _payload = record.rsplit(b"|", 1)
    nested = b"[" * 100_000 + b"]" * 100_000
    client.set(keys.session, head + b'|["ada",{"a":' + nested + b"}]")

    assert store.find_session(token) is None


def test_create_session_deeply_nested_attributes_rejected() -> None:
    store = SessionStore(fakeredis.FakeRedis())
    nested: list[Any] = []
    for _ in range(5000):
        nested = [nested]

    with pytest.raises(ConfigurationError):
        store.create_session("ada", {"tree": nested})


def test_find_session_rejects_record_copied_from_other_user(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = SessionStore(client)
    alice, _ = store.create_session("alice")
    bob, _ = store.create_session("bob")
    keys = KeySpace()
    client.set(
        keys.for_token(bob).session, client.get(keys.for_token(alice).session) or b""
    )

    assert store.find_session(bob) is None
    assert store.find_session(alice) is not None


def test_concurrent_renewals_share_one_successor(redis_url: str) -> None:
    store = SessionStore(redis.Redis.from_url(redis_url))
    token, _ = store.create_session("ada")
    barrier = threading.Barrier(3)
    results: list[Any] = []

    def renew() -> None:
        barrier.wait()
        results.append(store.renew_session(token))

    threads = [threading.Thread(target=renew) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(result is not None for result in results)
    assert len({result[0] for result in results}) == 1
    assert store.find_session(token) is None
    assert len(store.get_user_sessions("ada")) == 1


# Documentation


def test_docs_explain_mod_wsgi_authorization_header() -> None:
    pages = [path.read_text(encoding="utf-8") for path in DOCS.rglob("*.md")]

    assert any("WSGIPassAuthorization" in page for page in pages)
