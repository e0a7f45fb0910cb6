"""Helpers for driving both middlewares the same way in tests.

A :class:`Stack` is one middleware wrapped around a small echo app, with a
session store over fakeredis or a real Redis server. The WSGI stack sends
requests through werkzeug's test ``Client`` and the ASGI stack through
httpx's ``ASGITransport`` on an event loop of its own, so a test written
against :class:`Stack` runs unchanged against either middleware.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import fakeredis
import httpx
import pytest
import redis
import redis.asyncio
from werkzeug.test import Client

from bearer_mw import (
    AsyncBearerMiddleware,
    AsyncSessionStore,
    BearerMiddleware,
    SessionStore,
)
from bearer_mw.header import CredentialsStatus

MiddlewareKind = Literal["wsgi", "asgi"]
HeaderValue = str | bytes

#: The header table: value, parsed status, parsed token, and the status that
#: a middleware in required mode sends when no session has that token.
HEADER_CASES = [
    pytest.param(
        b"Bearer mF_9.B5f-4.1JqM",
        CredentialsStatus.BEARER,
        "mF_9.B5f-4.1JqM",
        401,
        id="plain",
    ),
    pytest.param(
        b"bearer mF_9.B5f-4.1JqM",
        CredentialsStatus.BEARER,
        "mF_9.B5f-4.1JqM",
        401,
        id="scheme-lowercase",
    ),
    pytest.param(
        b"BEARER mF_9.B5f-4.1JqM",
        CredentialsStatus.BEARER,
        "mF_9.B5f-4.1JqM",
        401,
        id="scheme-uppercase",
    ),
    pytest.param(
        b"Bearer ABCdef",
        CredentialsStatus.BEARER,
        "ABCdef",
        401,
        id="token-case-preserved",
    ),
    pytest.param(
        b"Bearer ab+/~cd-._ef==",
        CredentialsStatus.BEARER,
        "ab+/~cd-._ef==",
        401,
        id="every-b64token-character",
    ),
    pytest.param(
        b"Bearer ab=cd", CredentialsStatus.MALFORMED, None, 400, id="equals-in-middle"
    ),
    pytest.param(b"Bearer a:b", CredentialsStatus.MALFORMED, None, 400, id="colon"),
    pytest.param(b"Bearer", CredentialsStatus.EMPTY, None, 401, id="scheme-alone"),
    pytest.param(
        b"Bearer ", CredentialsStatus.EMPTY, None, 401, id="scheme-then-space"
    ),
    pytest.param(b"", CredentialsStatus.ABSENT, None, 401, id="empty-value"),
    pytest.param(b"    ", CredentialsStatus.ABSENT, None, 401, id="spaces-only"),
    pytest.param(
        b"Bearer  mF_9", CredentialsStatus.BEARER, "mF_9", 401, id="two-spaces"
    ),
    pytest.param(
        b"Bearer\tmF_9", CredentialsStatus.MALFORMED, None, 400, id="tab-after-scheme"
    ),
    pytest.param(
        b"Bearer mF_9  ", CredentialsStatus.BEARER, "mF_9", 401, id="trailing-spaces"
    ),
    pytest.param(
        b"Bearer abc def", CredentialsStatus.MALFORMED, None, 400, id="two-tokens"
    ),
    pytest.param(
        b"Bearer A, Bearer B",
        CredentialsStatus.MALFORMED,
        None,
        400,
        id="folded-bearer-pair",
    ),
    pytest.param(
        b"Basic dXNlcg==, Bearer A",
        CredentialsStatus.MALFORMED,
        None,
        400,
        id="basic-then-bearer",
    ),
    pytest.param(
        b"Basic dXNlcjpwYXNz",
        CredentialsStatus.OTHER_SCHEME,
        None,
        401,
        id="basic-scheme",
    ),
    pytest.param(
        b"Bearer \xe9\xff\x80", CredentialsStatus.MALFORMED, None, 400, id="non-ascii"
    ),
    pytest.param(
        b"Bearer ab\x00cd", CredentialsStatus.MALFORMED, None, 400, id="nul-in-token"
    ),
    pytest.param(
        b"Bearer " + b"a" * 65536,
        CredentialsStatus.MALFORMED,
        None,
        400,
        id="oversized",
    ),
]


@dataclass(frozen=True)
class Reply:
    """A complete response, with header names lowercased."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return the only value of header ``name``, or None if it is absent."""
        values = self.header_values(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Return every value of header ``name``, in order."""
        return [value for key, value in self.headers if key == name.lower()]

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)


class CountingClient:
    """A Redis client stand-in that records each command before running it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.commands: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Record the command name, then pass the call on unchanged."""
        self.commands.append(str(args[0]))
        return self.client.execute_command(*args, **options)


class FailingClient:
    """A Redis client stand-in whose every command fails to connect."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Record the command name, then raise as a lost connection does."""
        self.commands.append(str(args[0]))
        raise redis.ConnectionError("connection refused by the test")


class AsyncFailingClient(FailingClient):
    """The asyncio form of :class:`FailingClient`."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:  # type: ignore[override]
        """Record the command name, then raise as a lost connection does."""
        return super().execute_command(*args, **options)


@dataclass
class ManualClock:
    """A store clock in epoch milliseconds that moves only when told to.

    It starts at the wall-clock time, because Redis expires keys by its own
    clock and the stores write absolute expiry times.
    """

    now: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    def __call__(self) -> int:
        return self.now


def environ_summary(environ: dict[str, Any]) -> dict[str, Any]:
    """Describe what the WSGI middleware put in the environ, as JSON data."""
    session = environ.get("bearer_mw.session")
    return {
        "user": environ.get("REMOTE_USER"),
        "auth_type": environ.get("AUTH_TYPE"),
        "scopes": list(session.scopes) if session is not None else [],
        "has_auth": "bearer_mw.auth" in environ,
    }


def echo_wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answer 200 with :func:`environ_summary` as the JSON body."""
    body = json.dumps(environ_summary(environ)).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


class _NoAuth:
    scopes: tuple[str, ...] = ()


NO_AUTH = _NoAuth()


def scope_summary(scope: dict[str, Any]) -> dict[str, Any]:
    """Describe what the ASGI middleware put in the scope, as JSON data."""
    user = scope.get("user")
    authenticated = user is not None and user.is_authenticated
    return {
        "user": user.identity if authenticated else None,
        "auth_type": "Bearer" if authenticated else None,
        # The ASGI side adds Starlette's "authenticated" marker to the grants;
        # leave it out so both middlewares report the session's own scopes.
        "scopes": [
            name
            for name in scope.get("auth", NO_AUTH).scopes
            if name != "authenticated"
        ],
        "has_auth": "bearer_mw.auth" in scope,
    }


async def echo_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer 200 with :func:`scope_summary` as the JSON body."""
    assert scope["type"] == "http"
    body = json.dumps(scope_summary(scope)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Stack:
    """One middleware over an app and a store, driven by plain requests.

    ``calls`` records every Redis command of the middleware's store.
    ``sessions`` is a synchronous store over the same data, for creating
    sessions; its commands are not recorded.
    """

    kind: MiddlewareKind
    middleware: Any
    calls: CountingClient
    sessions: SessionStore

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Sequence[tuple[str, HeaderValue]] = (),
    ) -> Reply:
        """Send one request and return the whole response."""
        raise NotImplementedError

    def login(self, user_id: str = "ada", scopes: Iterable[str] = ()) -> str:
        """Create a session with ``scopes`` and return its token."""
        token, _ = self.sessions.create_session(user_id, {"scopes": list(scopes)})
        return token

    def close(self) -> None:
        """Release the stack's clients and event loop."""


class WsgiStack(Stack):
    """A :class:`BearerMiddleware` driven by werkzeug's test client."""

    kind: MiddlewareKind = "wsgi"

    def __init__(
        self, middleware: BearerMiddleware, calls: CountingClient, sessions: Any
    ) -> None:
        self.middleware = middleware
        self.calls = calls
        self.sessions = sessions
        self.client = Client(middleware)

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Sequence[tuple[str, HeaderValue]] = (),
    ) -> Reply:
        # A WSGI server hands over header values as latin-1 text (PEP 3333)
        # and folds repeated fields into one, comma-separated.
        environ: dict[str, str] = {}
        for name, value in headers:
            key = "HTTP_" + name.upper().replace("-", "_")
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            environ[key] = f"{environ[key]}, {text}" if key in environ else text
        response = self.client.open(path, method=method, environ_overrides=environ)
        reply = Reply(
            response.status_code,
            [(name.lower(), value) for name, value in response.headers.items()],
            response.get_data(),
        )
        response.close()
        return reply


class AsgiStack(Stack):
    """An :class:`AsyncBearerMiddleware` driven by httpx's ``ASGITransport``."""

    kind: MiddlewareKind = "asgi"

    def __init__(
        self,
        middleware: AsyncBearerMiddleware,
        calls: CountingClient,
        sessions: Any,
        loop: asyncio.AbstractEventLoop,
        cleanup: Callable[[], Any],
    ) -> None:
        self.middleware = middleware
        self.calls = calls
        self.sessions = sessions
        self.loop = loop
        self._cleanup = cleanup

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Sequence[tuple[str, HeaderValue]] = (),
    ) -> Reply:
        return self.loop.run_until_complete(self._request(method, path, headers))

    async def _request(
        self, method: str, path: str, headers: Sequence[tuple[str, HeaderValue]]
    ) -> Reply:
        transport = httpx.ASGITransport(app=self.middleware)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            response = await client.request(method, path, headers=list(headers))
        return Reply(
            response.status_code,
            [
                (name.decode("latin-1").lower(), value.decode("latin-1"))
                for name, value in response.headers.raw
            ],
            response.content,
        )

    def close(self) -> None:
        self.loop.run_until_complete(self._cleanup())
        self.loop.close()


async def _nothing() -> None:
    return None


@contextmanager
def open_stack(
    kind: MiddlewareKind,
    *,
    redis_url: str | None = None,
    clock: ManualClock | None = None,
    wsgi_app: Any = echo_wsgi_app,
    asgi_app: Any = echo_asgi_app,
    failing: bool = False,
    **settings: Any,
) -> Iterator[Stack]:
    """Build a middleware of ``kind`` over fakeredis, or Redis at ``redis_url``.

    ``failing`` gives the middleware a store whose every command fails, for
    outage tests. ``settings`` go to the middleware's constructor.
    """
    store_settings: dict[str, Any] = {"key_prefix": "test:"}
    if clock is not None:
        store_settings["clock"] = clock

    server = fakeredis.FakeServer()
    if redis_url is None:
        sync_client: Any = fakeredis.FakeRedis(server=server)
    else:
        sync_client = redis.Redis.from_url(redis_url)
    sessions = SessionStore(sync_client, **store_settings)
    try:
        stack = _build_stack(
            kind,
            sessions,
            server,
            redis_url,
            failing,
            store_settings,
            wsgi_app,
            asgi_app,
            settings,
        )
    except BaseException:
        sync_client.close()
        raise

    try:
        yield stack
    finally:
        stack.close()
        sync_client.close()


def _build_stack(
    kind: MiddlewareKind,
    sessions: SessionStore,
    server: fakeredis.FakeServer,
    redis_url: str | None,
    failing: bool,
    store_settings: dict[str, Any],
    wsgi_app: Any,
    asgi_app: Any,
    settings: dict[str, Any],
) -> Stack:
    if kind == "wsgi":
        inner: Any = FailingClient() if failing else CountingClient(sessions.client)
        store = SessionStore(inner, **store_settings)
        return WsgiStack(BearerMiddleware(wsgi_app, store, **settings), inner, sessions)

    if redis_url is None:
        async_client: Any = fakeredis.FakeAsyncRedis(server=server)
        cleanup: Callable[[], Any] = _nothing
    else:
        async_client = redis.asyncio.Redis.from_url(redis_url)
        cleanup = async_client.aclose
    inner = AsyncFailingClient() if failing else CountingClient(async_client)
    async_store = AsyncSessionStore(inner, **store_settings)
    middleware = AsyncBearerMiddleware(asgi_app, async_store, **settings)
    loop = asyncio.new_event_loop()
    return AsgiStack(middleware, inner, sessions, loop, cleanup)
