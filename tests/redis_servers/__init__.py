"""Real redis-server processes for tests: a single server, a cluster, sentinels.

Each class starts its processes on free loopback ports, waits until they are
ready and removes everything again on ``close()`` (a server) or ``stop()`` (a
cluster or sentinel group). Errors raise ``RedisServerError`` with the tail of
the server log or the topology that each node reports.
"""

from __future__ import annotations

from tests.redis_servers.cluster import ClusterNodeView, RedisCluster, RedisClusterNode
from tests.redis_servers.sentinel import RedisSentinel, RedisSentinelGroup
from tests.redis_servers.server import (
    MISSING_BINARY_HINT,
    RedisServer,
    RedisServerError,
    free_port,
    missing_binaries,
    wait_until,
)

__all__ = [
    "MISSING_BINARY_HINT",
    "ClusterNodeView",
    "RedisCluster",
    "RedisClusterNode",
    "RedisSentinel",
    "RedisSentinelGroup",
    "RedisServer",
    "RedisServerError",
    "free_port",
    "missing_binaries",
    "wait_until",
]
