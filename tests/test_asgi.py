"""ASGI specifics of AsyncBearerMiddleware: scopes, websockets, lifespan, Starlette."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import fakeredis
import httpx
import pytest
from asgiref.testing import ApplicationCommunicator
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bearer_mw import AsyncBearerMiddleware, AsyncSessionStore, Rule, SessionStore
from tests.middleware_support import CountingClient, scope_summary

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SlowAsyncClient(CountingClient):
    """A counting asyncio client that holds each command for a while."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:  # type: ignore[override]
        self.commands.append(str(args[0]))
        await asyncio.sleep(0.05)
        return await self.client.execute_command(*args, **options)


class Backend:
    """Fake Redis data shared by a sync store for setup and a counted async store."""

    def __init__(self) -> None:
        server = fakeredis.FakeServer()
        self.sync_client = fakeredis.FakeRedis(server=server)
        self.async_client = fakeredis.FakeAsyncRedis(server=server)
        self.calls = CountingClient(self.async_client)
        self.store = AsyncSessionStore(self.calls)

    def login(self, user_id: str = "ada", scopes: list[str] | None = None) -> str:
        attributes = {"scopes": scopes or []}
        token, _ = SessionStore(self.sync_client).create_session(user_id, attributes)
        return token


@asynccontextmanager
async def open_backend() -> AsyncIterator[Backend]:
    backend = Backend()
    try:
        yield backend
    finally:
        await backend.async_client.aclose()
        backend.sync_client.close()


class RecordingApp:
    """An ASGI app that records its scopes and answers 200 or accepts websockets."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def http_scope(headers: list[tuple[bytes, bytes]], path: str = "/") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


def websocket_scope(
    headers: list[tuple[bytes, bytes]],
    *,
    query_string: bytes = b"",
    subprotocols: list[str] | None = None,
    denial_response: bool = False,
) -> dict[str, Any]:
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/live",
        "raw_path": b"/live",
        "root_path": "",
        "query_string": query_string,
        "headers": [(b"host", b"localhost"), *headers],
        "subprotocols": subprotocols or [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "extensions": {},
    }
    if denial_response:
        scope["extensions"] = {"websocket.http.response": {}}
    return scope


async def run_http(app: Any, scope: dict[str, Any]) -> tuple[int, dict[bytes, bytes]]:
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=5)
    body = await communicator.receive_output(timeout=5)
    await communicator.wait(timeout=5)
    assert start["type"] == "http.response.start"
    assert body["type"] == "http.response.body"
    return start["status"], dict(start["headers"])


LAST_WEBSOCKET_MESSAGES = {"websocket.close", "websocket.http.response.body"}


async def open_websocket(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    messages = [await communicator.receive_output(timeout=5)]
    while messages[-1]["type"] not in LAST_WEBSOCKET_MESSAGES:
        messages.append(await communicator.receive_output(timeout=5))
    await communicator.wait(timeout=5)
    return messages


async def test_duplicate_headers_rejected() -> None:
    async with open_backend() as backend:
        token = backend.login()
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(inner, backend.store)
        headers = [
            (b"authorization", f"Bearer {token}".encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ]

        status, response_headers = await run_http(middleware, http_scope(headers))

    assert status == 400
    assert b'error="invalid_request"' in response_headers[b"www-authenticate"]
    assert backend.calls.commands == []
    assert inner.scopes == []


async def test_header_name_case_ignored() -> None:
    async with open_backend() as backend:
        token = backend.login()
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(inner, backend.store, required=True)
        headers = [(b"Authorization", f"Bearer {token}".encode())]

        status, _ = await run_http(middleware, http_scope(headers))

    assert status == 200
    assert inner.scopes[0]["user"].identity == "ada"


async def test_non_latin_header_bytes_400() -> None:
    async with open_backend() as backend:
        middleware = AsyncBearerMiddleware(RecordingApp(), backend.store)
        headers = [(b"authorization", "Bearer jeton-\u00e9t\u00e9".encode())]

        status, _ = await run_http(middleware, http_scope(headers))

    assert status == 400
    assert backend.calls.commands == []


async def test_scope_not_mutated() -> None:
    async with open_backend() as backend:
        token = backend.login(scopes=["read"])
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(inner, backend.store)
        scope = http_scope([(b"authorization", f"Bearer {token}".encode())])
        original = copy.deepcopy(scope)

        await run_http(middleware, scope)

    assert scope == original
    assert inner.scopes[0] is not scope
    assert scope_summary(inner.scopes[0]) == {
        "user": "ada",
        "auth_type": "Bearer",
        "scopes": ["read"],
        "has_auth": True,
    }
    assert inner.scopes[0]["bearer_mw.session"].user_id == "ada"


async def test_outer_user_kept_when_anonymous() -> None:
    async with open_backend() as backend:
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(inner, backend.store)
        scope = {**http_scope([]), "user": "set by an outer layer"}

        await run_http(middleware, scope)

    assert inner.scopes[0]["user"] == "set by an outer layer"


async def test_lifespan_passes_through() -> None:
    events: list[str] = []
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    async with open_backend() as backend:
        middleware = AsyncBearerMiddleware(app, backend.store, required=True)
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        communicator = ApplicationCommunicator(middleware, scope)

        await communicator.send_input({"type": "lifespan.startup"})
        started = await communicator.receive_output(timeout=5)
        await communicator.send_input({"type": "lifespan.shutdown"})
        stopped = await communicator.receive_output(timeout=5)
        await communicator.wait(timeout=5)

    assert started == {"type": "lifespan.startup.complete"}
    assert stopped == {"type": "lifespan.shutdown.complete"}
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert seen == [scope]
    assert seen[0] is scope
    assert backend.calls.commands == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="no-token"),
        pytest.param([(b"authorization", b"Bearer a b")], id="malformed"),
        pytest.param([(b"authorization", b"Bearer unknown")], id="unknown"),
    ],
)
async def test_websocket_rejected_with_1008(headers: list[Any]) -> None:
    async with open_backend() as backend:
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(inner, backend.store, required=True)

        messages = await open_websocket(middleware, websocket_scope(headers))

    assert [message["type"] for message in messages] == ["websocket.close"]
    assert messages[0]["code"] == 1008
    assert inner.scopes == []


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        pytest.param([], 401, None, id="no-token"),
        pytest.param(
            [(b"authorization", b"Bearer a b")], 400, b"invalid_request", id="malformed"
        ),
        pytest.param(
            [(b"authorization", b"Bearer unknown")], 401, b"invalid_token", id="unknown"
        ),
    ],
)
async def test_websocket_denial_response(
    headers: list[Any], status: int, error: bytes | None
) -> None:
    async with open_backend() as backend:
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(inner, backend.store, required=True)
        scope = websocket_scope(headers, denial_response=True)

        messages = await open_websocket(middleware, scope)

    types = [message["type"] for message in messages]
    assert types == ["websocket.http.response.start", "websocket.http.response.body"]
    assert messages[0]["status"] == status
    response_headers = dict(messages[0]["headers"])
    challenge = response_headers[b"www-authenticate"]
    assert challenge.startswith(b'Bearer realm="api"')
    if error is None:
        assert b"error=" not in challenge
    else:
        assert b'error="' + error + b'"' in challenge
    assert response_headers[b"cache-control"] == b"no-store"
    assert inner.scopes == []


async def test_websocket_insufficient_scope_403() -> None:
    async with open_backend() as backend:
        token = backend.login(scopes=["read"])
        middleware = AsyncBearerMiddleware(
            RecordingApp(), backend.store, rules=[Rule("/live", scopes=["live"])]
        )
        headers = [(b"authorization", f"Bearer {token}".encode())]
        scope = websocket_scope(headers, denial_response=True)

        messages = await open_websocket(middleware, scope)

    assert messages[0]["status"] == 403
    assert b'scope="live"' in dict(messages[0]["headers"])[b"www-authenticate"]


async def test_websocket_accepted_with_header() -> None:
    async with open_backend() as backend:
        token = backend.login()
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(inner, backend.store, required=True)
        headers = [(b"authorization", f"Bearer {token}".encode())]

        messages = await open_websocket(middleware, websocket_scope(headers))

    assert [message["type"] for message in messages] == [
        "websocket.accept",
        "websocket.close",
    ]
    assert inner.scopes[0]["user"].identity == "ada"


async def test_websocket_query_token_removed() -> None:
    async with open_backend() as backend:
        token = backend.login()
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(
            inner, backend.store, required=True, websocket_token="query"
        )
        query = f"room=7&access_token={token}&x=a%20b".encode()

        messages = await open_websocket(
            middleware, websocket_scope([], query_string=query)
        )

    assert messages[0]["type"] == "websocket.accept"
    passed = inner.scopes[0]
    assert passed["user"].identity == "ada"
    assert passed["query_string"] == b"room=7&x=a%20b"
    assert token not in repr(passed)


async def test_websocket_subprotocol_token_removed() -> None:
    async with open_backend() as backend:
        token = backend.login()
        inner = RecordingApp()
        middleware = AsyncBearerMiddleware(
            inner, backend.store, required=True, websocket_token="subprotocol"
        )
        offered = f"chat.v2, bearer.{token}".encode()
        scope = websocket_scope(
            [(b"sec-websocket-protocol", offered)],
            subprotocols=["chat.v2", f"bearer.{token}"],
        )

        messages = await open_websocket(middleware, scope)

    assert messages[0]["type"] == "websocket.accept"
    passed = inner.scopes[0]
    assert passed["user"].identity == "ada"
    assert passed["subprotocols"] == ["chat.v2"]
    assert (b"sec-websocket-protocol", b"chat.v2") in passed["headers"]
    assert token not in repr(passed)


async def test_websocket_query_ignored_when_disabled() -> None:
    async with open_backend() as backend:
        token = backend.login()
        middleware = AsyncBearerMiddleware(RecordingApp(), backend.store, required=True)
        query = f"access_token={token}".encode()

        messages = await open_websocket(
            middleware, websocket_scope([], query_string=query)
        )

    assert messages[0]["type"] == "websocket.close"
    assert messages[0]["code"] == 1008


async def test_websocket_header_and_query_400() -> None:
    async with open_backend() as backend:
        token = backend.login()
        middleware = AsyncBearerMiddleware(
            RecordingApp(), backend.store, websocket_token="query"
        )
        scope = websocket_scope(
            [(b"authorization", f"Bearer {token}".encode())],
            query_string=f"access_token={token}".encode(),
            denial_response=True,
        )

        messages = await open_websocket(middleware, scope)

    assert messages[0]["status"] == 400
    assert backend.calls.commands == []


async def test_lazy_awaits_share_lookup() -> None:
    results: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        auth = scope["bearer_mw.auth"]
        results.extend(await asyncio.gather(*(auth.validate() for _ in range(8))))
        results.append(await auth.validate())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with open_backend() as backend:
        token = backend.login()
        slow = SlowAsyncClient(backend.async_client)
        middleware = AsyncBearerMiddleware(app, AsyncSessionStore(slow), lazy=True)
        headers = [(b"authorization", f"Bearer {token}".encode())]

        status, _ = await run_http(middleware, http_scope(headers))

    assert status == 204
    assert slow.commands == ["GET"]
    assert len(results) == 9
    assert results[0] is not None
    assert all(result is results[0] for result in results)


@requires("read")
async def profile(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "user": request.user.display_name,
            "authenticated": request.user.is_authenticated,
            "scopes": request.auth.scopes,
        }
    )


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"authenticated": request.user.is_authenticated})


@requires("authenticated")
async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.identity})


starlette_app = Starlette(
    routes=[
        Route("/profile", profile),
        Route("/health", health),
        Route("/whoami", whoami),
    ]
)


@pytest.mark.parametrize(
    ("login", "status"),
    [
        pytest.param(False, 403, id="anonymous"),
        pytest.param(True, 200, id="with-session"),
    ],
)
async def test_starlette_requires_authenticated(login: bool, status: int) -> None:
    async with open_backend() as backend:
        middleware = AsyncBearerMiddleware(starlette_app, backend.store)
        headers = {}
        if login:
            headers["Authorization"] = f"Bearer {backend.login('ada', [])}"
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            response = await client.get("/whoami", headers=headers)

    assert response.status_code == status
    if login:
        assert response.json() == {"user": "ada"}


@pytest.mark.parametrize(
    ("scopes", "status"),
    [
        pytest.param(None, 403, id="anonymous"),
        pytest.param(["write"], 403, id="without-read"),
        pytest.param(["read", "write"], 200, id="with-read"),
    ],
)
async def test_starlette_requires(scopes: list[str] | None, status: int) -> None:
    async with open_backend() as backend:
        middleware = AsyncBearerMiddleware(
            starlette_app, backend.store, rules=[Rule("/health", public=True)]
        )
        headers = {}
        if scopes is not None:
            headers["Authorization"] = f"Bearer {backend.login('ada', scopes)}"
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            response = await client.get("/profile", headers=headers)
            public = await client.get("/health", headers=headers)

    assert response.status_code == status
    if status == 200:
        assert response.json() == {
            "user": "ada",
            "authenticated": True,
            "scopes": ["authenticated", "read", "write"],
        }
    assert public.status_code == 200
    assert public.json() == {"authenticated": False}
