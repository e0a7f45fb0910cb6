"""Helpers for fault, race and secret tests: apps, clients and test stacks.

A stack is one middleware (WSGI or ASGI) over a store, driven through a
synchronous interface, so one test body exercises both. The ASGI stack runs its
own event loop in a background thread, because a ``redis.asyncio`` client
belongs to the loop that created it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import httpx
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import Client

from bearer_mw import (
    AsyncBearerMiddleware,
    AsyncSessionStore,
    BearerMiddleware,
    Rule,
    SessionStore,
)
from bearer_mw.client import redis_from_url
from bearer_mw.config import AUTH_KEY, SESSION_KEY
from bearer_mw.session import system_clock
from tests.redis_servers import RedisServer

T = TypeVar("T")

#: Socket and connect timeout of the store's Redis client during fault tests,
#: in seconds.
FAULT_TIMEOUT = 0.25
#: Maximum time, in seconds, that one request may take while Redis fails. A
#: lookup makes at most two attempts, and a fresh connection spends up to one
#: timeout connecting and one on its handshake, so four timeouts plus slack
#: for a busy two-core machine.
REQUEST_BOUND = 4 * FAULT_TIMEOUT + 1.0
#: Maximum time, in seconds, that a test waits for one call into the ASGI loop.
LOOP_CALL_TIMEOUT = 30.0

#: Paths of the test apps. ``/private`` requires a session, ``/optional``
#: takes one if it is there, ``/logout`` ends it and ``/renew`` rotates it.
PRIVATE = "/private"
OPTIONAL = "/optional"
LOGOUT = "/logout"
RENEW = "/renew"
RULES = (Rule(OPTIONAL, required=False),)

#: Keys that the middleware adds to the environ or the scope.
ADDED_KEYS = (AUTH_KEY, SESSION_KEY, "REMOTE_USER", "AUTH_TYPE", "user", "auth")


def fault_server(*extra_args: str) -> RedisServer:
    """Build (not start) a server that allows DEBUG and keeps data on restart.

    ``DEBUG SLEEP`` needs ``enable-debug-command`` on Redis 7. An append-only
    file synced on every write keeps sessions through ``kill()`` and
    ``stop()``, so a token stays good across an outage, as it would on a
    production server with persistence.
    """
    return RedisServer(
        name="faults",
        extra_args=(
            "--enable-debug-command",
            "yes",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            *extra_args,
        ),
    )


def sync_client(
    server: RedisServer, *, timeout: float = FAULT_TIMEOUT, **options: Any
) -> redis.Redis:
    """Build a client that fails within ``timeout`` seconds and never retries.

    redis-py retries three times with backoff by default, which would stretch
    an outage response to seconds. The store's own single retry is what these
    tests measure. ``single_connection_client`` is an option of the client,
    not of a pool, so such a client is built directly with the same settings
    that :func:`~bearer_mw.client.redis_from_url` uses.
    """
    if not options.pop("single_connection_client", False):
        return redis_from_url(server.url, timeout=timeout, asyncio=False, **options)
    return redis.Redis(
        host=server.address[0],
        port=server.port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
        **options,
    )


def async_client(
    server: RedisServer, *, timeout: float = FAULT_TIMEOUT, **options: Any
) -> redis.asyncio.Redis:
    """Build the asyncio twin of :func:`sync_client`."""
    if not options.pop("single_connection_client", False):
        return redis_from_url(server.url, timeout=timeout, asyncio=True, **options)
    return redis.asyncio.Redis(
        host=server.address[0],
        port=server.port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 0),
        single_connection_client=True,
        **options,
    )


@dataclass(frozen=True)
class Reply:
    """One response as a test records it, with the seconds it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)

    @property
    def user(self) -> str | None:
        """The user id that the app saw, or None for an anonymous request."""
        if self.status != 200:
            return None
        user: str | None = self.json()["user"]
        return user


def app_document(user: str | None, session_id: str | None) -> bytes:
    """Encode what the test apps return: the user and session they saw."""
    return json.dumps({"user": user, "session": session_id}).encode()


class WhoAmIApp:
    """A WSGI app that returns the user and session the middleware set.

    ``/logout`` ends the request's session. Every environ value that the
    middleware added is kept in ``seen`` for later inspection.
    """

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            self.seen.append({k: environ[k] for k in ADDED_KEYS if k in environ})
        if environ.get("PATH_INFO") == LOGOUT:
            environ[AUTH_KEY].invalidate()
        session = environ.get(SESSION_KEY)
        body = app_document(
            environ.get("REMOTE_USER"), None if session is None else session.session_id
        )
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


class WhoAmIAsgiApp:
    """The ASGI twin of :class:`WhoAmIApp`."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.seen.append({k: scope[k] for k in ADDED_KEYS if k in scope})
        if scope["path"] == LOGOUT:
            await scope[AUTH_KEY].invalidate()
        session = scope.get(SESSION_KEY)
        user = scope.get("user")
        user_id = user.identity if user is not None and user.is_authenticated else None
        body = app_document(user_id, None if session is None else session.session_id)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def auth_headers(token: str | None, header: str | None = None) -> dict[str, str]:
    """Build the request headers that carry ``token``, or ``header`` as it is."""
    if header is not None:
        return {"Authorization": header}
    return {} if token is None else {"Authorization": f"Bearer {token}"}


class Clock:
    """The system clock plus an offset in milliseconds that a test moves."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return system_clock() + self.offset


class Stack(Protocol):
    """A middleware over a store, called synchronously from a test."""

    name: str
    app: WhoAmIApp | WhoAmIAsgiApp

    def store_call(self, method: str, *args: Any) -> Any:
        """Call a store method by name and return its result."""

    def request(
        self,
        path: str,
        token: str | None,
        method: str = "GET",
        header: str | None = None,
    ) -> Reply:
        """Send one request; ``header`` replaces the Authorization value."""

    def requests(self, calls: Sequence[tuple[str, str | None]]) -> list[Reply]:
        """Send GET requests concurrently; replies come back in call order."""

    def close(self) -> None:
        """Close the Redis client and stop any helper thread."""


def middleware_options(**options: Any) -> dict[str, Any]:
    """Fill in the settings every test stack shares."""
    options.setdefault("required", True)
    options.setdefault("rules", RULES)
    options.setdefault("renew_path", RENEW)
    return options


class WsgiStack:
    """:class:`BearerMiddleware` over a :class:`SessionStore`."""

    name = "wsgi"

    def __init__(
        self,
        client: redis.Redis,
        *,
        store_options: dict[str, Any] | None = None,
        workers: int = 16,
        **options: Any,
    ) -> None:
        self.client = client
        self.store = SessionStore(client, **(store_options or {}))
        self.app = WhoAmIApp()
        self.middleware = BearerMiddleware(
            self.app, self.store, **middleware_options(**options)
        )
        self._executor = ThreadPoolExecutor(workers)

    def store_call(self, method: str, *args: Any) -> Any:
        return getattr(self.store, method)(*args)

    def request(
        self,
        path: str,
        token: str | None,
        method: str = "GET",
        header: str | None = None,
    ) -> Reply:
        client = Client(self.middleware)
        started = time.monotonic()
        headers = auth_headers(token, header)
        response = client.open(path, method=method, headers=headers)
        elapsed = time.monotonic() - started
        body = response.get_data()
        headers = dict(response.headers.items())
        response.close()
        return Reply(response.status_code, headers, body, elapsed)

    def requests(self, calls: Sequence[tuple[str, str | None]]) -> list[Reply]:
        futures = [self._executor.submit(self.request, *call) for call in calls]
        return [future.result(LOOP_CALL_TIMEOUT) for future in futures]

    def close(self) -> None:
        self._executor.shutdown()
        self.client.close()
        self.client.connection_pool.disconnect()


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(LOOP_CALL_TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(LOOP_CALL_TIMEOUT)
        self.loop.close()


class AsgiStack:
    """:class:`AsyncBearerMiddleware` over an :class:`AsyncSessionStore`.

    Requests go through httpx's ASGITransport on the stack's own loop.
    """

    name = "asgi"

    def __init__(
        self,
        client_factory: Callable[[], redis.asyncio.Redis],
        *,
        store_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.loop = LoopThread()
        self.client = self.loop.run(_call_async(client_factory))
        self.store = AsyncSessionStore(self.client, **(store_options or {}))
        self.app = WhoAmIAsgiApp()
        self.middleware = AsyncBearerMiddleware(
            self.app, self.store, **middleware_options(**options)
        )
        self.http = httpx.AsyncClient(
            # asgiref's event types are narrower than the mappings httpx declares.
            transport=httpx.ASGITransport(app=cast(Any, self.middleware)),
            base_url="http://testserver",
        )

    def store_call(self, method: str, *args: Any) -> Any:
        return self.loop.run(getattr(self.store, method)(*args))

    async def _request(
        self, path: str, token: str | None, method: str, header: str | None = None
    ) -> Reply:
        started = time.monotonic()
        headers = auth_headers(token, header)
        response = await self.http.request(method, path, headers=headers)
        elapsed = time.monotonic() - started
        return Reply(
            response.status_code, dict(response.headers), response.content, elapsed
        )

    def request(
        self,
        path: str,
        token: str | None,
        method: str = "GET",
        header: str | None = None,
    ) -> Reply:
        return self.loop.run(self._request(path, token, method, header))

    def requests(self, calls: Sequence[tuple[str, str | None]]) -> list[Reply]:
        async def send_all() -> list[Reply]:
            return list(
                await asyncio.gather(
                    *(self._request(path, token, "GET") for path, token in calls)
                )
            )

        return self.loop.run(send_all())

    def close(self) -> None:
        self.loop.run(self.http.aclose())
        self.loop.run(self.client.aclose())
        # A pool passed in by the caller is not closed by aclose().
        self.loop.run(self.client.connection_pool.disconnect())
        self.loop.close()


async def _call_async(factory: Callable[[], T]) -> T:
    return factory()


def build_stack(
    kind: str, server: RedisServer, *, timeout: float = FAULT_TIMEOUT, **options: Any
) -> WsgiStack | AsgiStack:
    """Build the ``kind`` stack ("wsgi" or "asgi") over ``server``.

    ``client_options`` go to the Redis client, ``store_options`` to the store,
    everything else to the middleware.
    """
    client_options = options.pop("client_options", {})
    if kind == "wsgi":
        return WsgiStack(
            sync_client(server, timeout=timeout, **client_options), **options
        )
    return AsgiStack(
        lambda: async_client(server, timeout=timeout, **client_options), **options
    )


class WsgiServerThread:
    """A threaded werkzeug server on a loopback port, serving in a thread."""

    def __init__(self, app: Any) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        """Base URL of the running server."""
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self._thread.join(LOOP_CALL_TIMEOUT)
        self.server.server_close()


def admin_command(server: RedisServer, *args: Any) -> Any:
    """Send one command to ``server`` on a fresh connection of its own."""
    with server.client() as client:
        return client.execute_command(*args)
