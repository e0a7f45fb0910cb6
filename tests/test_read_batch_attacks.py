"""Attacks on batched session reads: concurrency, cancellation and faults.

Every server here listens on 127.0.0.1: the suite's redis-server fixtures, a
TCP proxy that can hold commands on their way to Redis, and a uvicorn process
that serves the ASGI middleware. Each request must get its own session, None,
or StoreUnavailableError, whatever happens to the other reads of its batch.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
import redis.asyncio

import bearer_mw.read_batch
from bearer_mw import (
    AsyncBearerMiddleware,
    AsyncSessionStore,
    SessionStore,
    StoreUnavailableError,
)
from bearer_mw.client import redis_from_url
from bearer_mw.config import AUTH_KEY
from bearer_mw.session import Session
from bearer_mw.topologies import aclose_client, sentinel_from_url
from tests.fault_support import (
    FAULT_TIMEOUT,
    REQUEST_BOUND,
    WhoAmIAsgiApp,
    fault_server,
)
from tests.middleware_support import HEADER_CASES
from tests.redis_servers import RedisSentinelGroup, RedisServer, free_port
from tests.test_cluster import sentinel_url
from tests.test_end_to_end import URL_VARIABLE, serve

T = TypeVar("T")

HOST = "127.0.0.1"
OUTAGE_LOGGER = "bearer_mw.store"
#: Seconds that an in-process scenario may take before it counts as hung.
SCENARIO_TIMEOUT = 10.0
#: Socket timeout, in seconds, of clients whose commands a proxy delays. It is
#: far longer than any delay, so a delayed command never times out.
HELD_TIMEOUT = 5.0
#: Milliseconds since the epoch, one day and one minute back: a session
#: created then with the default periods is idle now.
IDLE_CREATED_OFFSET_MS = (24 * 3600 + 60) * 1000

KINDS = ("live", "idle", "unknown", "wrong-type", "foreign", "malformed")


class CountingRedis(redis.asyncio.Redis):
    """A real asyncio client that counts the pipelines it builds."""

    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


# --- Sessions of every kind --------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A token of one kind and what each kind of lookup returns for it."""

    kind: str
    user: str
    token: str

    @property
    def header(self) -> str:
        return f"Bearer {self.token}"

    def found(self) -> str | None:
        """The user id that find_session returns, or the name of its error."""
        if self.kind == "wrong-type":
            return "StoreUnavailableError"
        if self.kind in {"live", "idle"}:
            return self.user
        return None

    def served(self, *, lazy: bool) -> tuple[int, str | None]:
        """The status and user that a request with this token receives.

        The eager middleware requires an active session. The lazy one lets
        every request through and the app calls ``validate()`` itself.
        """
        if self.kind == "malformed":
            return 400, None
        if self.kind == "wrong-type":
            return 503, None
        if self.kind == "live":
            return 200, self.user
        return (200, None) if lazy else (401, None)


def session_key(store: SessionStore, token: str) -> str:
    named = store._operations.lookup_key(token)
    assert named is not None, "a token that the store issued has a key"
    return named[1]


def seed_cases(url: str, count: int, kinds: Sequence[str] = KINDS) -> list[Case]:
    """Create ``count`` users, one session each, kinds taken in turn."""
    client = redis.Redis.from_url(url)
    now = int(time.time() * 1000)
    store = SessionStore(client)
    past = SessionStore(client, clock=lambda: now - IDLE_CREATED_OFFSET_MS)
    cases = []
    try:
        for number in range(count):
            kind = kinds[number % len(kinds)]
            user = f"user-{number}"
            creator = past if kind == "idle" else store
            token, _ = creator.create_session(user)
            if kind in {"unknown", "wrong-type"}:
                client.delete(session_key(store, token))
            if kind == "wrong-type":
                client.hset(session_key(store, token), "field", "value")
            if kind == "foreign":
                token = f"foreign-{number}"
            if kind == "malformed":
                token = token[:-1] + "!"
            cases.append(Case(kind, user, token))
    finally:
        client.close()
    return cases


def seed_tokens(url: str, users: Sequence[str]) -> list[str]:
    """Create one active session for each of ``users`` and return the tokens."""
    client = redis.Redis.from_url(url)
    try:
        store = SessionStore(client)
        return [store.create_session(user)[0] for user in users]
    finally:
        client.close()


def outcome(result: Any) -> str | None:
    """Name a lookup's result: the user id, None, or the error type."""
    if isinstance(result, BaseException):
        return type(result).__name__
    if result is None:
        return None
    assert isinstance(result, Session)
    return result.user_id


def in_use(client: redis.asyncio.Redis) -> int:
    pool: Any = client.connection_pool
    return len(pool._in_use_connections)


async def wait_in_use(client: redis.asyncio.Redis, count: int) -> None:
    """Wait until ``count`` connections of the client's pool are checked out."""
    deadline = time.monotonic() + SCENARIO_TIMEOUT
    while in_use(client) < count:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{in_use(client)} connections in use after {SCENARIO_TIMEOUT} s, "
                f"expected {count}"
            )
        await asyncio.sleep(0.01)
    # The connection is taken before the commands are written: give the
    # write a moment, so the commands are on their way.
    await asyncio.sleep(0.05)


class LoopReports:
    """What asyncio passes to the running loop's exception handler.

    Unretrieved task and future exceptions arrive here when the object is
    collected, so :meth:`messages` collects garbage first.
    """

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: self.contexts.append(context)
        )

    def messages(self) -> list[str]:
        gc.collect()
        return [str(context.get("message")) for context in self.contexts]


def run_bounded(coroutine: Awaitable[T]) -> T:
    """Run ``coroutine`` in a new loop, and fail if it outlasts SCENARIO_TIMEOUT."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, SCENARIO_TIMEOUT)

    return asyncio.run(bounded())


# --- A proxy that delays commands --------------------------------------------


class HoldingProxy:
    """A TCP proxy on 127.0.0.1 in front of Redis, run by a thread of its own.

    While held, the commands that clients send wait in the proxy, so a test
    can act while a batch is in flight. Replies always pass. A connection
    that either side closes is closed on the other side too.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._open: set[asyncio.StreamWriter] = set()
        self._released = self._call(self._new_event())
        self._server = self._call(self._listen())
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def hold(self) -> None:
        self._call(self._set_held(True))

    def release(self) -> None:
        self._call(self._set_held(False))

    def cut(self) -> None:
        """Drop every open connection at once, as a network failure would."""
        self._call(self._abort_all())

    def close(self) -> None:
        self._call(self._shut_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(SCENARIO_TIMEOUT)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(SCENARIO_TIMEOUT)

    async def _new_event(self) -> asyncio.Event:
        event = asyncio.Event()
        event.set()
        return event

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, HOST, 0)

    async def _set_held(self, held: bool) -> None:
        if held:
            self._released.clear()
        else:
            self._released.set()

    async def _abort_all(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()

    async def _shut_down(self) -> None:
        self._server.close()
        await self._abort_all()
        self._released.set()
        await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                *self._target
            )
        except OSError:
            writer.transport.abort()
            return
        ends = (writer, upstream_writer)
        self._open.update(ends)
        pipes = [
            asyncio.ensure_future(self._pipe(reader, upstream_writer, held=True)),
            asyncio.ensure_future(self._pipe(upstream_reader, writer, held=False)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for end in ends:
                end.transport.abort()
                self._open.discard(end)
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        held: bool,
    ) -> None:
        while data := await reader.read(65536):
            if held:
                await self._released.wait()
            writer.write(data)
            await writer.drain()


@pytest.fixture
def proxy(redis_url: str, redis_server: RedisServer) -> Iterator[HoldingProxy]:
    started = HoldingProxy(redis_server.address)
    yield started
    started.close()


@pytest.fixture
def batch_from_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the first read of a pass lead a batch, however few are in flight.

    Under light load the store sends reads one by one. The tests that use this
    fixture pick which read leads a batch and which reads join it.
    """
    monkeypatch.setattr(bearer_mw.read_batch, "MIN_READS_TO_BATCH", 1, raising=False)


@pytest.fixture
def server(redis_installed: None) -> Iterator[RedisServer]:
    """A server of this test alone, which keeps its data when restarted."""
    with fault_server() as started:
        yield started


# --- Cancellation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "cancelled"),
    [
        pytest.param("collecting", "leader", id="leader-collecting"),
        pytest.param("collecting", "follower", id="follower-collecting"),
        pytest.param("collecting", "all", id="all-collecting"),
        pytest.param("in-flight", "leader", id="leader-in-flight"),
        pytest.param("in-flight", "follower", id="follower-in-flight"),
        pytest.param("in-flight", "all", id="all-in-flight"),
        pytest.param("retrying", "leader", id="leader-retrying"),
        pytest.param("retrying", "all", id="all-retrying"),
    ],
)
@pytest.mark.usefixtures("batch_from_first_read")
def test_cancel_point_leaves_nothing(
    redis_url: str, proxy: HoldingProxy, moment: str, cancelled: str
) -> None:
    users = [f"user-{n}" for n in range(6)]
    tokens = seed_tokens(redis_url, users)
    chosen = {"leader": {0}, "follower": {3}, "all": set(range(len(tokens)))}
    cancelled_reads = chosen[cancelled]

    async def scenario() -> tuple[list[Any], int, list[str | None], list[str], int]:
        reports = LoopReports()
        client = redis_from_url(proxy.url, timeout=HELD_TIMEOUT, asyncio=True)
        store = AsyncSessionStore(client)
        await client.ping()

        if moment != "collecting":
            proxy.hold()
        tasks = [asyncio.ensure_future(store.find_session(t)) for t in tokens]
        if moment == "collecting":
            # One pass: the first read leads and waits, the others join it.
            await asyncio.sleep(0)
        else:
            await wait_in_use(client, 1)
        if moment == "retrying":
            proxy.cut()
            # Every read lost the batch's connection and retries on its own.
            await wait_in_use(client, len(tokens))
        for number in cancelled_reads:
            tasks[number].cancel()
        proxy.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        del tasks

        await asyncio.sleep(0.05)
        left_in_use = in_use(client)
        # The same pool serves a new batch with its own replies.
        after = await asyncio.gather(*(store.find_session(t) for t in tokens))
        left_in_flight = getattr(store._batcher, "_in_flight", 0)
        await client.aclose()
        return (
            list(results),
            left_in_use,
            [outcome(r) for r in after],
            reports.messages(),
            left_in_flight,
        )

    results, left_in_use, after, messages, left_in_flight = run_bounded(scenario())

    for number, result in enumerate(results):
        if number in cancelled_reads:
            assert isinstance(result, asyncio.CancelledError), (number, result)
        else:
            assert outcome(result) == users[number], number
    assert left_in_use == 0
    assert after == users
    assert messages == []
    assert left_in_flight == 0


@pytest.mark.usefixtures("batch_from_first_read")
def test_follower_survives_many_resends(redis_url: str) -> None:
    """A read whose batch loses its leader again and again still returns."""
    resends = 1200
    follower_token, leader_token = seed_tokens(redis_url, ["follower", "leader"])

    async def scenario() -> str | None:
        client = redis_from_url(redis_url, timeout=HELD_TIMEOUT, asyncio=True)
        store = AsyncSessionStore(client)
        leader = asyncio.ensure_future(store.find_session(leader_token))
        follower = asyncio.ensure_future(store.find_session(follower_token))
        await asyncio.sleep(0)
        for _ in range(resends):
            # The follower waits in the leader's batch. A new read starts
            # before the follower sends again, so it joins that one next.
            leader.cancel()
            leader = asyncio.ensure_future(store.find_session(leader_token))
            await asyncio.sleep(0)
        results = await asyncio.gather(follower, leader, return_exceptions=True)
        await client.aclose()
        return outcome(results[0])

    assert run_bounded(scenario()) == "follower"


# --- Error objects --------------------------------------------------------------


def error_chain(error: BaseException) -> list[BaseException]:
    """Return ``error`` and every cause and context behind it, once each."""
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending.extend((current.__cause__, current.__context__))
    return chain


def frames_showing(error: BaseException, text: str) -> list[str]:
    """Name the frames in ``error``'s chain with a local whose repr has ``text``.

    Error trackers record the local variables of every frame of a reported
    exception and of its causes.
    """
    found = []
    for link in error_chain(error):
        for frame, _ in traceback.walk_tb(link.__traceback__):
            for name, value in frame.f_locals.items():
                if text in repr(value):
                    found.append(f"{frame.f_code.co_name}:{name}")
    return found


@pytest.mark.parametrize(
    "batch_reads",
    [
        pytest.param(False, id="unbatched"),
        pytest.param(True, id="batched"),
    ],
)
@pytest.mark.usefixtures("batch_from_first_read")
def test_lookup_error_hides_other_sessions(redis_url: str, batch_reads: bool) -> None:
    # The first read leads the batch, the third follows it.
    cases = seed_cases(redis_url, 3, ("wrong-type", "live", "wrong-type"))
    secret = cases[1].user

    async def lookups() -> list[Any]:
        client = redis_from_url(redis_url, timeout=HELD_TIMEOUT, asyncio=True)
        store = AsyncSessionStore(client, batch_reads=batch_reads)
        results = await asyncio.gather(
            *(store.find_session(case.token) for case in cases),
            return_exceptions=True,
        )
        await client.aclose()
        return list(results)

    leading, served, following = run_bounded(lookups())

    assert outcome(served) == secret
    assert isinstance(leading, StoreUnavailableError)
    assert isinstance(following, StoreUnavailableError)
    assert frames_showing(leading, secret) == []
    assert frames_showing(following, secret) == []


@pytest.mark.usefixtures("batch_from_first_read")
def test_resend_absent_from_error_chain(redis_url: str) -> None:
    """A read sent again after its leader was cancelled fails like any other."""
    cases = seed_cases(redis_url, 2, ("live", "wrong-type"))

    async def scenario() -> Any:
        client = redis_from_url(redis_url, timeout=HELD_TIMEOUT, asyncio=True)
        store = AsyncSessionStore(client)
        leader, follower = (
            asyncio.ensure_future(store.find_session(case.token)) for case in cases
        )
        await asyncio.sleep(0)
        leader.cancel()
        results = await asyncio.gather(leader, follower, return_exceptions=True)
        await client.aclose()
        return results[1]

    error = run_bounded(scenario())

    assert isinstance(error, StoreUnavailableError)
    names = [type(link).__name__ for link in error_chain(error)]
    assert "_Resend" not in names, names


# --- Faults ---------------------------------------------------------------------


@pytest.mark.usefixtures("batch_from_first_read")
def test_client_kill_mid_batch(
    redis_url: str, redis_server: RedisServer, proxy: HoldingProxy
) -> None:
    users = [f"user-{n}" for n in range(8)]
    tokens = seed_tokens(redis_url, users)

    async def scenario() -> tuple[list[Any], int]:
        client = CountingRedis(
            connection_pool=redis_from_url(
                proxy.url, timeout=HELD_TIMEOUT, asyncio=True
            ).connection_pool
        )
        store = AsyncSessionStore(client)
        await client.ping()
        proxy.hold()
        tasks = [asyncio.ensure_future(store.find_session(t)) for t in tokens]
        await wait_in_use(client, 1)
        with redis_server.client() as admin:
            killed = admin.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        proxy.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        pipelines = client.pipelines
        await client.aclose(close_connection_pool=True)
        return list(results), pipelines

    results, pipelines = run_bounded(scenario())

    # Each read of the lost batch retried on a connection of its own.
    assert [outcome(r) for r in results] == users
    assert pipelines == 1


@pytest.mark.parametrize("batch_reads", [True, False], ids=["batched", "unbatched"])
def test_paused_server_fails_bounded(server: RedisServer, batch_reads: bool) -> None:
    users = [f"user-{n}" for n in range(20)]
    tokens = seed_tokens(server.url, users)

    async def scenario() -> tuple[list[Any], float, int, list[str | None]]:
        client = redis_from_url(server.url, timeout=FAULT_TIMEOUT, asyncio=True)
        store = AsyncSessionStore(client, batch_reads=batch_reads)
        await store.find_session(tokens[0])
        server.pause()
        started = time.monotonic()
        try:
            results = await asyncio.gather(
                *(store.find_session(t) for t in tokens), return_exceptions=True
            )
        finally:
            elapsed = time.monotonic() - started
            server.resume()
        left_in_use = in_use(client)
        after = await asyncio.gather(*(store.find_session(t) for t in tokens))
        await client.aclose()
        return list(results), elapsed, left_in_use, [outcome(r) for r in after]

    results, elapsed, left_in_use, after = run_bounded(scenario())

    assert {outcome(r) for r in results} == {"StoreUnavailableError"}
    assert elapsed < REQUEST_BOUND
    assert left_in_use == 0
    assert after == users


@pytest.mark.parametrize("batch_reads", [True, False], ids=["batched", "unbatched"])
def test_restart_served_after_retry(server: RedisServer, batch_reads: bool) -> None:
    """Reads on a pool of connections that a restart closed all succeed."""
    users = [f"user-{n}" for n in range(20)]
    tokens = seed_tokens(server.url, users)

    async def scenario() -> list[Any]:
        client = redis_from_url(server.url, timeout=FAULT_TIMEOUT, asyncio=True)
        store = AsyncSessionStore(client, batch_reads=batch_reads)
        # Concurrent writes fill the pool with open connections.
        await asyncio.gather(*(store.create_session("warm") for _ in users))
        server.restart()
        results = await asyncio.gather(
            *(store.find_session(t) for t in tokens), return_exceptions=True
        )
        await client.aclose()
        return list(results)

    assert [outcome(r) for r in run_bounded(scenario())] == users


@pytest.mark.parametrize("batch_reads", [True, False], ids=["batched", "unbatched"])
def test_outage_log_counts_each_read(
    server: RedisServer, batch_reads: bool, caplog: pytest.LogCaptureFixture
) -> None:
    users = [f"user-{n}" for n in range(8)]
    tokens = seed_tokens(server.url, users)

    async def scenario() -> tuple[list[Any], list[Any]]:
        client = redis_from_url(server.url, timeout=FAULT_TIMEOUT, asyncio=True)
        store = AsyncSessionStore(client, batch_reads=batch_reads)
        await store.find_session(tokens[0])
        server.stop()
        try:
            failed = await asyncio.gather(
                *(store.find_session(t) for t in tokens), return_exceptions=True
            )
        finally:
            server.start()
        served = await asyncio.gather(*(store.find_session(t) for t in tokens))
        await client.aclose()
        return list(failed), list(served)

    with caplog.at_level(logging.DEBUG):
        failed, served = run_bounded(scenario())

    assert {outcome(r) for r in failed} == {"StoreUnavailableError"}
    assert [outcome(r) for r in served] == users
    outage = [r for r in caplog.records if r.name == OUTAGE_LOGGER]
    warnings = [r.getMessage() for r in outage if r.levelno == logging.WARNING]
    recoveries = [r.getMessage() for r in outage if r.levelno == logging.INFO]
    assert len(warnings) == 1
    assert "find_session" in warnings[0]
    assert "ConnectionError" in warnings[0]
    assert len(recoveries) == 1
    assert f"after {len(tokens)} failed calls" in recoveries[0]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [token for token in tokens if token in logged]


@pytest.mark.usefixtures("batch_from_first_read")
def test_raising_pool_overlapping_batches(redis_url: str, proxy: HoldingProxy) -> None:
    """A batch that finds redis-py's raising pool full fails with 503, not 500."""
    users = [f"user-{n}" for n in range(20)]
    tokens = seed_tokens(redis_url, users)

    async def scenario() -> tuple[list[Any], list[Any], int, int]:
        pool = redis.asyncio.ConnectionPool.from_url(
            proxy.url, max_connections=1, socket_timeout=HELD_TIMEOUT
        )
        client = CountingRedis(connection_pool=pool)
        store = AsyncSessionStore(client)
        await client.ping()
        proxy.hold()
        first = [asyncio.ensure_future(store.find_session(t)) for t in tokens[:10]]
        await wait_in_use(client, 1)
        # The first batch has the only connection, so the second batch finds
        # the pool full, and so does the retry of each of its reads.
        second = await asyncio.gather(
            *(store.find_session(t) for t in tokens[10:]), return_exceptions=True
        )
        proxy.release()
        served = await asyncio.gather(*first, return_exceptions=True)
        left_in_use = in_use(client)
        await client.aclose(close_connection_pool=True)
        return list(served), list(second), left_in_use, client.pipelines

    served, second, left_in_use, pipelines = run_bounded(scenario())

    assert [outcome(r) for r in served] == users[:10]
    for user, result in zip(users[10:], second, strict=True):
        assert outcome(result) in {user, "StoreUnavailableError"}
    assert left_in_use == 0
    assert pipelines == 2


def test_blocking_pool_waves_own_replies(redis_url: str) -> None:
    users = [f"user-{n}" for n in range(200)]
    tokens = seed_tokens(redis_url, users)

    async def scenario() -> tuple[list[Any], int]:
        pool = redis_from_url(
            redis_url, timeout=HELD_TIMEOUT, asyncio=True, max_connections=2
        ).connection_pool
        client = CountingRedis(connection_pool=pool)
        store = AsyncSessionStore(client)
        tasks = []
        for wave in range(10):
            wave_tokens = tokens[wave * 20 : (wave + 1) * 20]
            tasks += [asyncio.ensure_future(store.find_session(t)) for t in wave_tokens]
            # The next wave starts in a later pass, as another batch.
            await asyncio.sleep(0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose(close_connection_pool=True)
        return list(results), client.pipelines

    results, pipelines = run_bounded(scenario())

    assert [outcome(r) for r in results] == users
    assert pipelines >= 5


@pytest.mark.parametrize("batch_reads", [True, False], ids=["batched", "unbatched"])
def test_decoded_replies_mixed_kinds(redis_url: str, batch_reads: bool) -> None:
    cases = seed_cases(redis_url, 36)

    async def lookups() -> list[Any]:
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        store = AsyncSessionStore(client, batch_reads=batch_reads)
        results = await asyncio.gather(
            *(store.find_session(case.token) for case in cases),
            return_exceptions=True,
        )
        await client.aclose()
        return list(results)

    results = run_bounded(lookups())

    assert [outcome(r) for r in results] == [case.found() for case in cases]


def test_sentinel_client_batches_reads(redis_sentinel: RedisSentinelGroup) -> None:
    redis_sentinel.flush_all()
    users = [f"user-{n}" for n in range(12)]

    async def scenario() -> tuple[list[Any], int]:
        client = sentinel_from_url(
            sentinel_url(redis_sentinel), timeout=HELD_TIMEOUT, asyncio=True
        )
        built: list[Any] = []
        pipeline = client.pipeline

        def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
            built.append(args)
            return pipeline(*args, **kwargs)

        client.pipeline = counting_pipeline  # type: ignore[method-assign]
        store = AsyncSessionStore(client)
        tokens = [(await store.create_session(user))[0] for user in users]
        results = await asyncio.gather(*(store.find_session(t) for t in tokens))
        await aclose_client(client)
        return list(results), len(built)

    results, pipelines = run_bounded(scenario())

    assert [outcome(r) for r in results] == users
    assert pipelines == 1


# --- Event loops and clients ----------------------------------------------------


@pytest.mark.usefixtures("batch_from_first_read")
def test_batch_other_loop_not_joined(redis_url: str) -> None:
    """A read never joins a batch that another event loop is collecting."""
    stalled_token, token = seed_tokens(redis_url, ["stalled", "served"])
    client = redis_from_url(redis_url, timeout=HELD_TIMEOUT, asyncio=True)
    store = AsyncSessionStore(client)
    other_loop = asyncio.new_event_loop()
    try:
        stalled = other_loop.create_task(store.find_session(stalled_token))
        # One pass: the read starts a batch and waits, then the loop stops.
        other_loop.call_soon(other_loop.stop)
        other_loop.run_forever()
        assert not stalled.done()

        async def read() -> Session | None:
            try:
                return await store.find_session(token)
            finally:
                await client.aclose()

        session = run_bounded(read())
        stalled.cancel()
        other_loop.run_until_complete(asyncio.gather(stalled, return_exceptions=True))
    finally:
        other_loop.close()

    assert outcome(session) == "served"


def test_store_client_swap_reads(redis_url: str) -> None:
    users = [f"user-{n}" for n in range(4)]
    tokens = seed_tokens(redis_url, users)
    empty_database = redis_url.rsplit("/", 1)[0] + "/1"

    async def lookups() -> list[Any]:
        replaced = redis_from_url(empty_database, timeout=HELD_TIMEOUT, asyncio=True)
        current = redis_from_url(redis_url, timeout=HELD_TIMEOUT, asyncio=True)
        store = AsyncSessionStore(replaced)
        store.client = current
        results = await asyncio.gather(*(store.find_session(t) for t in tokens))
        await replaced.aclose()
        await current.aclose()
        return list(results)

    assert [outcome(r) for r in run_bounded(lookups())] == users


# --- The ASGI middleware ----------------------------------------------------------


class LazyWhoAmIApp:
    """An ASGI app that looks up the request's session itself, then names the user."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = await scope[AUTH_KEY].validate()
        body = json.dumps({"user": None if session is None else session.user_id})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


class BatchRouterApp:
    """Eager and lazy middlewares over one batching store.

    ``/lazy/...`` goes to a lazy middleware whose app calls ``validate()``,
    ``/stats`` returns how many pipelines the client built, ``/`` returns 200
    for the start-up probe, and every other path requires an active session.
    """

    def __init__(self, client: CountingRedis) -> None:
        store = AsyncSessionStore(client)
        self.client = client
        self.eager = AsyncBearerMiddleware(WhoAmIAsgiApp(), store, required=True)
        self.lazy = AsyncBearerMiddleware(LazyWhoAmIApp(), store, lazy=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        if path.startswith("/lazy/"):
            await self.lazy(scope, receive, send)
        elif path in {"/", "/stats"}:
            body = json.dumps({"pipelines": self.client.pipelines}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        else:
            await self.eager(scope, receive, send)


def batch_app_from_environment() -> BatchRouterApp:
    """Build :class:`BatchRouterApp` for uvicorn's ``--factory``."""
    pool = redis_from_url(os.environ[URL_VARIABLE], asyncio=True).connection_pool
    return BatchRouterApp(CountingRedis(connection_pool=pool))


@pytest.fixture
def uvicorn_url(redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"{__name__}:batch_app_from_environment",
        "--host",
        HOST,
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--backlog",
        "512",
    ]
    yield from serve(command, port, redis_url, tmp_path)


@pytest.mark.slow
def test_uvicorn_every_reply_own_session(redis_url: str, uvicorn_url: str) -> None:
    cases = seed_cases(redis_url, 240)
    calls = [(path, case) for case in cases for path in ("/private", "/lazy/private")]
    calls *= 3
    random.Random(7).shuffle(calls)

    async def send_all() -> tuple[list[httpx.Response], Any]:
        limits = httpx.Limits(max_connections=96, max_keepalive_connections=96)
        async with httpx.AsyncClient(
            base_url=uvicorn_url, limits=limits, timeout=60.0
        ) as http:
            replies = await asyncio.gather(
                *(
                    http.get(path, headers={"Authorization": case.header})
                    for path, case in calls
                )
            )
            stats = (await http.get("/stats")).json()
        return list(replies), stats

    replies, stats = asyncio.run(send_all())

    wrong = []
    for (path, case), reply in zip(calls, replies, strict=True):
        user = reply.json()["user"] if reply.status_code == 200 else None
        expected = case.served(lazy=path.startswith("/lazy/"))
        if (reply.status_code, user) != expected:
            wrong.append((path, case.kind, case.user, reply.status_code, user))
    assert wrong == []
    # Lookups shared pipelines, so the batching path carried the load.
    assert stats["pipelines"] > 0


def test_header_cases_batched_middleware(redis_url: str) -> None:
    """Every header case keeps its status when lookups share pipelines."""
    tokens = seed_tokens(redis_url, ["user-0", "user-1", "user-2"])
    expected: list[tuple[bytes, int, str | None]] = []
    for case in HEADER_CASES:
        header, _, _, status = case.values
        assert isinstance(header, bytes)
        assert isinstance(status, int)
        expected.append((header, status, None))
    for owner, token in zip(["user-0", "user-1", "user-2"], tokens, strict=True):
        raw = token.encode()
        for header in (
            b"Bearer " + raw,
            b"bearer " + raw,
            b"BEARER " + raw,
            b"Bearer  " + raw,
            b"Bearer " + raw + b"  ",
        ):
            expected.append((header, 200, owner))
    last = "B" if tokens[0].endswith("A") else "A"
    expected.append((f"Bearer {tokens[0][:-1]}{last}".encode(), 401, None))

    async def send_all() -> tuple[list[httpx.Response], int]:
        client = CountingRedis(
            connection_pool=redis_from_url(
                redis_url, timeout=HELD_TIMEOUT, asyncio=True
            ).connection_pool
        )
        middleware = AsyncBearerMiddleware(
            WhoAmIAsgiApp(), AsyncSessionStore(client), required=True
        )
        transport = httpx.ASGITransport(app=middleware)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as http:
            replies = await asyncio.gather(
                *(
                    http.get("/", headers=[(b"authorization", header)])
                    for header, _, _ in expected
                )
            )
        await client.aclose(close_connection_pool=True)
        return list(replies), client.pipelines

    replies, pipelines = run_bounded(send_all())

    for (header, status, user), reply in zip(expected, replies, strict=True):
        assert reply.status_code == status, header[:40]
        if status == 200:
            assert reply.json()["user"] == user, header[:40]
    assert pipelines >= 1
