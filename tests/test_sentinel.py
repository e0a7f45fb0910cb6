"""Sentinel URLs, durable writes and failover under Redis Sentinel.

The store suite itself runs over Sentinel in ``tests/test_cluster.py``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bearer_mw import AsyncSessionStore, ConfigurationError, StoreUnavailableError
from bearer_mw.topologies import (
    SentinelURL,
    aclose_client,
    close_client,
    parse_sentinel_url,
    sentinel_from_url,
)
from tests.redis_servers import RedisSentinelGroup
from tests.test_cluster import TopologyHarness, sentinel_topology, sentinel_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "redis+sentinel://s1:26380/mymaster",
            SentinelURL((("s1", 26380),), "mymaster"),
            id="one-sentinel",
        ),
        pytest.param(
            "redis+sentinel://s1,s2:26381,[::1]:26382/main/3",
            SentinelURL((("s1", 26379), ("s2", 26381), ("::1", 26382)), "main", db=3),
            id="several-sentinels-database",
        ),
        pytest.param(
            "redis+sentinel://app:p%2Fw@s1:26379/my%20service/",
            SentinelURL((("s1", 26379),), "my service", 0, "app", "p/w"),
            id="credentials-quoted-service",
        ),
    ],
)
def test_parse_sentinel_url(url: str, expected: SentinelURL) -> None:
    assert parse_sentinel_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis+sentinel://s1:26379", id="no-service"),
        pytest.param("redis+sentinel://s1:26379/", id="empty-service"),
        pytest.param("redis+sentinel://s1:26379/main/x", id="database-not-number"),
        pytest.param("redis+sentinel://s1:26379/main/-1", id="negative-database"),
        pytest.param("redis+sentinel://s1:26379/main/0/extra", id="extra-segment"),
        pytest.param("redis+cluster://s1:26379/main", id="cluster-scheme"),
        pytest.param("redis+sentinel:///main", id="no-host"),
    ],
)
def test_parse_sentinel_url_rejects(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_sentinel_url(url)


def test_sentinel_from_url_reaches_primary(redis_sentinel: RedisSentinelGroup) -> None:
    client = sentinel_from_url(sentinel_url(redis_sentinel), timeout=5)
    try:
        role = client.execute_command("ROLE")[0]
        port = client.connection_pool.get_master_address()[1]
    finally:
        close_client(client)

    assert role in {b"master", "master"}
    assert port == redis_sentinel.primary().port


def test_sentinel_from_url_async_reaches_primary(
    redis_sentinel: RedisSentinelGroup,
) -> None:
    async def ping() -> bool:
        client = sentinel_from_url(
            sentinel_url(redis_sentinel), timeout=5, asyncio=True
        )
        try:
            return bool(await client.ping())
        finally:
            await aclose_client(client)

    assert asyncio.run(ping())


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_durable_write_waits_for_sentinel_replica(
    redis_sentinel_for_failover: RedisSentinelGroup, driver: str
) -> None:
    group = redis_sentinel_for_failover
    harness = TopologyHarness(sentinel_topology(group), driver)  # type: ignore[arg-type]
    try:
        store = harness.open_store(
            wait_replicas=1, wait_timeout=timedelta(milliseconds=300)
        )
        token, _ = store.create_session("durable-user")
        (replica,) = group.replicas()

        # Shorter than the sentinels' down-after period, so no failover starts.
        replica.pause()
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                store.invalidate_user_sessions("durable-user")
        finally:
            replica.resume()

        assert caught.value.operation == "invalidate_user_sessions"
        assert "0 of 1" in str(caught.value)
        assert store.find_session(token) is None
        assert store.create_session("durable-user")[1].user_id == "durable-user"
    finally:
        harness.close()


def test_sentinel_failover_keeps_sessions_and_revocations(
    redis_sentinel_for_failover: RedisSentinelGroup,
) -> None:
    group = redis_sentinel_for_failover
    (replica,) = group.replicas()

    async def scenario() -> None:
        # The socket timeout exceeds the WAIT timeout, so WAIT replies in time.
        client = sentinel_from_url(sentinel_url(group), timeout=3, asyncio=True)
        store = AsyncSessionStore(
            client, wait_replicas=1, wait_timeout=timedelta(seconds=1)
        )
        try:
            kept, _ = await store.create_session("failover-user")
            revoked, _ = await store.create_session("failover-user")
            renewed = await store.renew_session(
                (await store.create_session("failover-user"))[0]
            )
            assert renewed is not None
            assert await store.invalidate_session(revoked) is True

            group.primary().kill()
            await asyncio.to_thread(group.wait_for_promotion, replica, 30)

            assert await store.validate_session(kept) is not None
            assert await store.validate_session(renewed[0]) is not None
            assert await store.find_session(revoked) is None
            assert len(await store.get_user_sessions("failover-user")) == 2
        finally:
            await aclose_client(client)

    asyncio.run(scenario())
