"""Fixtures that run tests against real Redis servers started for the session.

The servers come from the ``tests.redis_servers`` package. Each session fixture starts
its processes only when a test first requests it. Without ``redis-server`` on
``PATH`` the tests that need it are skipped, except when the ``CI`` environment
variable is set: there they fail, so CI never passes without running them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.redis_servers import (
    MISSING_BINARY_HINT,
    RedisCluster,
    RedisSentinelGroup,
    RedisServer,
    missing_binaries,
)


def require_redis_binaries(*names: str) -> None:
    """Skip the requesting test if a program is missing, or fail it under CI."""
    missing = missing_binaries(*names)
    if not missing:
        return

    message = MISSING_BINARY_HINT.format(" and ".join(missing))
    if os.environ.get("CI"):
        pytest.fail(
            f"{message}. CI is set, so real-Redis tests must not be skipped.",
            pytrace=False,
        )
    pytest.skip(message)


@pytest.fixture
def redis_installed() -> None:
    """Skip the test, or fail it under CI, unless redis-server is on PATH.

    For tests that start their own ``RedisServer`` instead of using a fixture.
    """
    require_redis_binaries("redis-server")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A single redis-server for the whole session, closed at its end."""
    require_redis_binaries("redis-server")
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's server, with every database flushed.

    The server is resumed or started again first, in case an earlier test
    left it paused or stopped.
    """
    redis_server.resume()
    redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A cluster of three primaries with one replica each, for the session."""
    require_redis_binaries("redis-server", "redis-cli")
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_for_failover(redis_cluster: RedisCluster) -> Iterator[RedisCluster]:
    """The session's cluster for a test that stops nodes, restored after the test.

    After the test, stopped nodes start again and rejoin as replicas, and the
    fixture waits until every primary has a replica again.
    """
    yield redis_cluster
    redis_cluster.restore()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelGroup]:
    """A primary, a replica and three sentinels for the session."""
    require_redis_binaries("redis-server")
    with RedisSentinelGroup() as group:
        yield group


@pytest.fixture
def redis_sentinel_for_failover(
    redis_sentinel: RedisSentinelGroup,
) -> Iterator[RedisSentinelGroup]:
    """The session's sentinel group for a test that stops servers, then restored.

    After the test, stopped servers start again as replicas of the current
    primary, and the fixture waits until every sentinel reports them healthy.
    """
    yield redis_sentinel
    redis_sentinel.restore()
