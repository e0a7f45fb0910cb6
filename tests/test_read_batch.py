"""Batched session reads of the asyncio store, against a real redis-server.

Once MIN_READS_TO_BATCH reads are in flight, the reads that start in one
pass of the event loop share one pipeline. The reads before that point go out
one by one, so LEADER is the index of the first read that leads a batch. Each
read must still send its own GET and get its own reply or error, whatever
happens to the others: a cancelled request, a key of the wrong type, a lost
server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bearer_mw import AsyncSessionStore, StoreUnavailableError
from bearer_mw.client import redis_from_url
from bearer_mw.read_batch import MIN_READS_TO_BATCH
from bearer_mw.session import Session
from tests.fault_support import FAULT_TIMEOUT
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.anyio

LEADER = MIN_READS_TO_BATCH - 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingRedis(redis.asyncio.Redis):
    """A real asyncio client that counts the pipelines it builds."""

    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


def counting_client(url: str, *, timeout: float = 2.0) -> CountingRedis:
    pool = redis_from_url(url, timeout=timeout, asyncio=True).connection_pool
    return CountingRedis(connection_pool=pool)


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[CountingRedis]:
    built = counting_client(redis_url)
    yield built
    await built.aclose(close_connection_pool=True)


def get_calls(admin: redis.Redis) -> int:
    stats = admin.info("commandstats")
    entry = stats.get("cmdstat_get")
    return int(entry["calls"]) if entry else 0


async def create_users(store: AsyncSessionStore, count: int) -> list[str]:
    tokens = []
    for number in range(count):
        token, _ = await store.create_session(f"user-{number}")
        tokens.append(token)
    return tokens


def user_ids(results: list[Session | None]) -> list[str | None]:
    return [None if session is None else session.user_id for session in results]


@pytest.mark.parametrize(
    ("batch_reads", "pipelines"),
    [
        pytest.param(True, 1, id="batched-one-pipeline"),
        pytest.param(False, 0, id="unbatched-no-pipeline"),
    ],
)
async def test_batch_concurrent_reads(
    client: CountingRedis, admin: redis.Redis, batch_reads: bool, pipelines: int
) -> None:
    store = AsyncSessionStore(client, batch_reads=batch_reads)
    tokens = await create_users(store, 20)
    before = get_calls(admin)

    results = await asyncio.gather(*(store.find_session(t) for t in tokens))

    assert user_ids(list(results)) == [f"user-{n}" for n in range(20)]
    assert client.pipelines == pipelines
    assert get_calls(admin) - before == 20


async def test_batch_lone_read_plain_get(
    client: CountingRedis, admin: redis.Redis
) -> None:
    store = AsyncSessionStore(client)
    (token,) = await create_users(store, 1)
    before = get_calls(admin)

    session = await store.find_session(token)

    assert session is not None
    assert session.user_id == "user-0"
    assert client.pipelines == 0
    assert get_calls(admin) - before == 1


async def test_batch_light_load_plain_gets(
    client: CountingRedis, admin: redis.Redis
) -> None:
    store = AsyncSessionStore(client)
    tokens = await create_users(store, LEADER)
    before = get_calls(admin)

    results = await asyncio.gather(*(store.find_session(t) for t in tokens))

    assert user_ids(list(results)) == [f"user-{n}" for n in range(LEADER)]
    assert client.pipelines == 0
    assert get_calls(admin) - before == LEADER


async def test_batch_light_load_after_burst(client: CountingRedis) -> None:
    store = AsyncSessionStore(client)
    tokens = await create_users(store, 20)
    tasks = [asyncio.create_task(store.find_session(t)) for t in tokens]
    await asyncio.sleep(0)
    tasks[LEADER].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert client.pipelines == 1

    # Every read of the burst has ended, cancelled ones included, so the next
    # few reads count as light load again.
    results = await asyncio.gather(*(store.find_session(t) for t in tokens[:LEADER]))

    assert user_ids(list(results)) == [f"user-{n}" for n in range(LEADER)]
    assert client.pipelines == 1


async def test_batch_errors_stay_per_read(
    client: CountingRedis, admin: redis.Redis
) -> None:
    store = AsyncSessionStore(client)
    *before_batch, good, wrong_type = await create_users(store, LEADER + 2)
    named = store._operations.lookup_key(wrong_type)
    assert named is not None
    admin.delete(named[1])
    admin.hset(named[1], "field", "value")
    unknown = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")

    results = await asyncio.gather(
        *(store.find_session(token) for token in before_batch),
        store.find_session(good),
        store.find_session(wrong_type),
        store.find_session(unknown),
        return_exceptions=True,
    )

    assert client.pipelines == 1
    batched = results[LEADER:]
    assert isinstance(batched[0], Session)
    assert batched[0].user_id == f"user-{LEADER}"
    assert isinstance(batched[1], StoreUnavailableError)
    assert batched[2] is None


async def test_batch_leader_cancelled_collecting(
    client: CountingRedis,
) -> None:
    store = AsyncSessionStore(client)
    tokens = await create_users(store, LEADER + 3)
    tasks = [asyncio.create_task(store.find_session(t)) for t in tokens]
    # One pass: every task runs up to its read, and LEADER waits for the rest.
    await asyncio.sleep(0)
    tasks[LEADER].cancel()

    results = await asyncio.gather(*tasks[:LEADER], *tasks[LEADER + 1 :])

    assert tasks[LEADER].cancelled()
    expected = [f"user-{n}" for n in range(LEADER + 3) if n != LEADER]
    assert user_ids(list(results)) == expected


async def test_batch_leader_cancelled_sending(
    client: CountingRedis, admin: redis.Redis
) -> None:
    store = AsyncSessionStore(client)
    tokens = await create_users(store, LEADER + 3)
    # Redis delays every command by 300 ms, so the batch is still in flight
    # when its leader is cancelled.
    admin.execute_command("CLIENT", "PAUSE", 300, "ALL")
    tasks = [asyncio.create_task(store.find_session(t)) for t in tokens]
    await asyncio.sleep(0.1)
    assert client.pipelines == 1
    tasks[LEADER].cancel()

    results = await asyncio.gather(*tasks[:LEADER], *tasks[LEADER + 1 :])

    assert tasks[LEADER].cancelled()
    expected = [f"user-{n}" for n in range(LEADER + 3) if n != LEADER]
    assert user_ids(list(results)) == expected


async def test_batch_follower_cancelled(
    client: CountingRedis,
) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    store = AsyncSessionStore(client)
    count = LEADER + 3
    tasks = [
        asyncio.create_task(store.find_session(t))
        for t in await create_users(store, count)
    ]
    await asyncio.sleep(0)
    follower = LEADER + 1
    tasks[follower].cancel()

    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert client.pipelines == 1
    assert isinstance(results[follower], asyncio.CancelledError)
    others = [results[n] for n in range(count) if n != follower]
    expected = [f"user-{n}" for n in range(count) if n != follower]
    assert user_ids(others) == expected  # type: ignore[arg-type]
    assert reported == []
    loop.set_exception_handler(None)


async def test_batch_lost_server_recovers(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = counting_client(redis_url, timeout=FAULT_TIMEOUT)
    store = AsyncSessionStore(client)
    try:
        tokens = await create_users(store, LEADER + 3)
        redis_server.stop()
        try:
            results = await asyncio.gather(
                *(store.find_session(t) for t in tokens), return_exceptions=True
            )
        finally:
            redis_server.start()
        assert all(isinstance(r, StoreUnavailableError) for r in results), results
        assert client.pipelines == 1
        # The server kept nothing, so the sessions are gone. Every lookup now
        # returns None instead of raising.
        after = await asyncio.gather(*(store.find_session(t) for t in tokens))
        assert list(after) == [None] * len(tokens)
    finally:
        await client.aclose(close_connection_pool=True)


TOKEN_KINDS = st.sampled_from(["live", "unknown", "wrong-type", "malformed"])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kinds=st.lists(TOKEN_KINDS, min_size=1, max_size=12))
def test_batch_matches_unbatched(redis_url: str, kinds: list[str]) -> None:
    async def lookups(batch_reads: bool) -> list[Any]:
        client = counting_client(redis_url)
        store = AsyncSessionStore(client, batch_reads=batch_reads)
        try:
            return list(
                await asyncio.gather(
                    *(store.find_session(t) for t in tokens), return_exceptions=True
                )
            )
        finally:
            await client.aclose(close_connection_pool=True)

    def outcome(result: Any) -> Any:
        if isinstance(result, BaseException):
            return type(result).__name__
        return None if result is None else result.user_id

    async def prepare() -> list[str]:
        client = counting_client(redis_url)
        store = AsyncSessionStore(client)
        prepared = []
        try:
            for number, kind in enumerate(kinds):
                token, _ = await store.create_session(f"user-{number}")
                named = store._operations.lookup_key(token)
                assert named is not None
                if kind == "unknown":
                    await client.delete(named[1])
                elif kind == "wrong-type":
                    await client.delete(named[1])
                    await client.hset(named[1], "field", "value")
                elif kind == "malformed":
                    token = token[:-1] + "!"
                prepared.append(token)
        finally:
            await client.aclose(close_connection_pool=True)
        return prepared

    tokens = asyncio.run(prepare())
    batched = [outcome(r) for r in asyncio.run(lookups(True))]
    unbatched = [outcome(r) for r in asyncio.run(lookups(False))]

    assert batched == unbatched
    expected = {
        "live": lambda n: f"user-{n}",
        "unknown": lambda n: None,
        "malformed": lambda n: None,
        "wrong-type": lambda n: "StoreUnavailableError",
    }
    assert batched == [expected[kind](n) for n, kind in enumerate(kinds)]
