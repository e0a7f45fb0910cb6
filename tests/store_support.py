"""Helpers for the store tests: a manual clock and one harness per store flavour.

A :class:`StoreHarness` gives every store the same synchronous methods, so each
test is written once and runs against the sync and the async store, over
fakeredis and over a real redis-server with several client settings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import fakeredis
import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from bearer_mw import AsyncSessionStore, Session, SessionStore
from bearer_mw.records import KeySpace, SessionKeys
from bearer_mw.session import system_clock

T = TypeVar("T")

Driver = Literal["sync", "async"]
Server = Literal["fakeredis", "redis"]


class ManualClock:
    """A clock in epoch milliseconds that moves only when a test moves it.

    It starts at the real time because Redis expires keys by its own clock, so
    a clock far in the past would make every ``PXAT`` expiry fire at once.
    """

    def __init__(self, start: int | None = None) -> None:
        self.now = system_clock() if start is None else start

    def __call__(self) -> int:
        return self.now

    def advance(self, milliseconds: int) -> None:
        """Move the clock forward by ``milliseconds``."""
        self.now += milliseconds

    def set(self, now: int) -> None:
        """Move the clock to ``now``, in epoch milliseconds."""
        self.now = now


@dataclass(frozen=True)
class Backend:
    """One combination of store driver, server and client options."""

    driver: Driver
    server: Server
    client_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_real(self) -> bool:
        """Whether the backend is a real redis-server."""
        return self.server == "redis"


def _backend(driver: Driver, server: Server, name: str = "", **options: Any) -> Any:
    suffix = f"-{name}" if name else ""
    return pytest.param(
        Backend(driver, server, options), id=f"{driver}-{server}{suffix}"
    )


#: Every driver over fakeredis and over real Redis, whose clients return
#: bytes over RESP2, str over RESP2 (``decode_responses``) and bytes over RESP3.
ALL_BACKENDS = [
    _backend("sync", "fakeredis"),
    _backend("async", "fakeredis"),
    _backend("sync", "redis"),
    _backend("async", "redis"),
    _backend("sync", "redis", "decoded", decode_responses=True),
    _backend("async", "redis", "decoded", decode_responses=True),
    _backend("sync", "redis", "resp3", protocol=3),
    _backend("async", "redis", "resp3", protocol=3),
]
#: The backends with a real redis-server behind them.
REAL_BACKENDS = [param for param in ALL_BACKENDS if param.values[0].is_real]
#: One backend per driver and server, for tests that do not depend on the client.
BASIC_BACKENDS = [param for param in ALL_BACKENDS if not param.values[0].client_options]
#: One fakeredis backend per driver, for tests that need no server at all.
DRIVER_BACKENDS = [param for param in BASIC_BACKENDS if not param.values[0].is_real]


class StoreDriver:
    """A sync or async store behind the synchronous method set of SessionStore."""

    def __init__(
        self, store: SessionStore | AsyncSessionStore, harness: StoreHarness
    ) -> None:
        self.store = store
        self._harness = harness

    def _call(self, method: str, *args: Any) -> Any:
        result = getattr(self.store, method)(*args)
        if isinstance(self.store, AsyncSessionStore):
            return self._harness.run(result)
        return result

    @property
    def key_space(self) -> KeySpace:
        """Key names under this store's prefix."""
        return KeySpace(self.store.key_prefix)

    def keys_for(self, token: str) -> SessionKeys:
        """Return the Redis keys of ``token``."""
        return self.key_space.for_token(token)

    def create_session(
        self, user_id: str, attributes: Mapping[str, Any] | None = None
    ) -> tuple[str, Session]:
        result: tuple[str, Session] = self._call("create_session", user_id, attributes)
        return result

    def find_session(self, token: str) -> Session | None:
        result: Session | None = self._call("find_session", token)
        return result

    def get_session(self, token: str) -> Session:
        result: Session = self._call("get_session", token)
        return result

    def validate_session(self, token: str) -> Session | None:
        result: Session | None = self._call("validate_session", token)
        return result

    def renew_session(self, token: str) -> tuple[str, Session] | None:
        result: tuple[str, Session] | None = self._call("renew_session", token)
        return result

    def invalidate_session(self, token: str) -> bool:
        result: bool = self._call("invalidate_session", token)
        return result

    def invalidate_user_sessions(self, user_id: str) -> int:
        result: int = self._call("invalidate_user_sessions", user_id)
        return result

    def get_user_sessions(self, user_id: str) -> list[Session]:
        result: list[Session] = self._call("get_user_sessions", user_id)
        return result

    def renew_concurrently(
        self, token: str, callers: int
    ) -> list[tuple[str, Session] | None]:
        """Renew ``token`` from ``callers`` threads or tasks started together."""
        store = self.store
        if isinstance(store, AsyncSessionStore):

            async def renew_all() -> list[tuple[str, Session] | None]:
                return list(
                    await asyncio.gather(
                        *(store.renew_session(token) for _ in range(callers))
                    )
                )

            return self._harness.run(renew_all())

        barrier = threading.Barrier(callers)

        def renew() -> tuple[str, Session] | None:
            barrier.wait(timeout=10)
            return store.renew_session(token)

        with concurrent.futures.ThreadPoolExecutor(callers) as pool:
            futures = [pool.submit(renew) for _ in range(callers)]
            return [future.result(timeout=30) for future in futures]


class StoreHarness:
    """Stores of one backend that share a manual clock and one Redis database.

    ``raw`` is a synchronous bytes client on the same data, for looking at
    keys and values the way Redis stores them.
    """

    def __init__(self, backend: Backend, redis_url: str | None) -> None:
        self.backend = backend
        self.redis_url = redis_url
        self.clock = ManualClock()
        self._loop = asyncio.new_event_loop() if backend.driver == "async" else None
        self._async_clients: list[redis.asyncio.Redis] = []
        self._sync_clients: list[redis.Redis] = []
        self._fake_server = fakeredis.FakeServer() if not backend.is_real else None
        self.raw = self._sync_client(decode_responses=False)

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to completion on the harness's event loop."""
        assert self._loop is not None, "only an async harness has an event loop"

        async def wrapper() -> T:
            return await awaitable

        return self._loop.run_until_complete(wrapper())

    def _sync_client(self, **options: Any) -> redis.Redis:
        if self._fake_server is not None:
            client: redis.Redis = fakeredis.FakeRedis(
                server=self._fake_server, **options
            )
        else:
            assert self.redis_url is not None
            client = redis.Redis.from_url(self.redis_url, **options)
        self._sync_clients.append(client)
        return client

    def _async_client(self, **options: Any) -> redis.asyncio.Redis:
        if self._fake_server is not None:
            client: redis.asyncio.Redis = fakeredis.FakeAsyncRedis(
                server=self._fake_server, **options
            )
        else:
            assert self.redis_url is not None
            client = redis.asyncio.Redis.from_url(self.redis_url, **options)
        self._async_clients.append(client)
        return client

    def new_client(self, **options: Any) -> redis.Redis | redis.asyncio.Redis:
        """Create a client of the harness's driver, with the backend's options."""
        merged = {**self.backend.client_options, **options}
        if self.backend.driver == "async":
            return self._async_client(**merged)
        return self._sync_client(**merged)

    def unreachable_client(self, port: int) -> redis.Redis | redis.asyncio.Redis:
        """Create a client of the harness's driver for a closed loopback port."""
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "socket_connect_timeout": 0.5,
            "socket_timeout": 0.5,
        }
        if self.backend.driver == "async":
            async_client = redis.asyncio.Redis(
                retry=AsyncRetry(NoBackoff(), 0), **options
            )
            self._async_clients.append(async_client)
            return async_client
        sync_client = redis.Redis(retry=Retry(NoBackoff(), 0), **options)
        self._sync_clients.append(sync_client)
        return sync_client

    def open_store(
        self,
        client: redis.Redis | redis.asyncio.Redis | None = None,
        **settings: Any,
    ) -> StoreDriver:
        """Create a store of the harness's driver; the clock is the harness's."""
        settings.setdefault("clock", self.clock)
        if client is None:
            client = self.new_client()
        store: SessionStore | AsyncSessionStore
        if self.backend.driver == "async":
            store = AsyncSessionStore(client, **settings)
        else:
            store = SessionStore(client, **settings)
        return StoreDriver(store, self)

    def value(self, key: str | bytes) -> bytes:
        """Return the string stored at ``key``; fail when there is none."""
        value = self.raw.get(key)
        assert isinstance(value, bytes), f"no string value at {key!r}"
        return value

    def members(self, key: str | bytes) -> dict[bytes, float]:
        """Return the members of the sorted set at ``key`` with their scores."""
        pairs: Any = self.raw.zrange(key, 0, -1, withscores=True)
        return dict(pairs)

    def expire_time(self, key: str) -> int:
        """Return the absolute expiry of ``key`` in epoch ms (``PEXPIRETIME``)."""
        return int(self.raw.pexpiretime(key))

    def all_keys(self) -> list[bytes]:
        """Return every key in the database."""
        return sorted(self.raw.scan_iter(count=1000))

    def close(self) -> None:
        """Close every client and the event loop."""
        if self._loop is not None:
            for async_client in self._async_clients:
                self._loop.run_until_complete(async_client.aclose())
            self._loop.close()
        for sync_client in self._sync_clients:
            sync_client.close()


@contextmanager
def open_harness(request: pytest.FixtureRequest) -> Iterator[StoreHarness]:
    """Build the harness for the backend in ``request.param``.

    A real backend asks for the ``redis_url`` fixture, which flushes the
    server's data, so fakeredis tests never start a server.
    """
    backend: Backend = request.param
    url = request.getfixturevalue("redis_url") if backend.is_real else None
    harness = StoreHarness(backend, url)
    try:
        yield harness
    finally:
        harness.close()


@dataclass(frozen=True)
class Traffic:
    """What a real redis-server received while a test ran one action.

    ``requests`` counts the reads the server processed from clients, less the
    sampling's own. That is one per command sent without pipelining. ``calls``
    is the growth of ``INFO commandstats``, which also counts the commands that
    scripts ran.
    """

    requests: int
    calls: dict[str, int]


def _sample(client: redis.Redis) -> tuple[int, dict[str, int]]:
    reads = int(client.info("stats")["total_reads_processed"])
    calls = {}
    for name, values in client.info("commandstats").items():
        command = name.removeprefix("cmdstat_")
        if command != "info":
            calls[command] = int(values["calls"])
    return reads, calls


def measure_traffic(client: redis.Redis, action: Callable[[], object]) -> Traffic:
    """Run ``action`` and return what the server received meanwhile.

    ``client`` must be connected already and must not be the action's client.
    """
    reads_before, calls_before = _sample(client)
    action()
    reads_after, calls_after = _sample(client)
    grown = {}
    for command, calls in calls_after.items():
        delta = calls - calls_before.get(command, 0)
        if delta:
            grown[command] = delta
    # Two reads are the sampling itself: the first sample's INFO commandstats,
    # and the second sample's INFO stats, which counts its own read.
    return Traffic(reads_after - reads_before - 2, grown)
