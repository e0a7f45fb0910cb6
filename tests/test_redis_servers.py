"""Checks that the real-Redis fixtures start, restart and fail over as promised."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient
from redis.sentinel import Sentinel

from tests.redis_servers import (
    RedisCluster,
    RedisClusterNode,
    RedisSentinelGroup,
    RedisServer,
    RedisServerError,
)
from tests.redis_servers import server as server_module


def key_served_by(cluster: RedisCluster, primary: RedisClusterNode) -> str:
    """Return a key whose hash slot ``primary`` serves."""
    for index in range(10_000):
        key = f"session:{index}"
        if cluster.primary_for_key(key) is primary:
            return key
    raise AssertionError(f"no key in 10000 tries maps to {primary}")


@contextmanager
def sentinel_client(group: RedisSentinelGroup) -> Iterator[Sentinel]:
    sentinel = Sentinel(group.sentinel_addresses, socket_timeout=5)
    try:
        yield sentinel
    finally:
        for client in sentinel.sentinels:
            client.close()


@pytest.mark.parametrize("run", [1, 2], ids=["first", "second"])
def test_redis_url_database_starts_empty(redis_url: str, run: int) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping()
        assert client.dbsize() == 0
        # The second run finds an empty database only if the fixture flushed
        # the key that the first run left behind.
        client.set("left-by-test", run)


def test_redis_server_restart_keeps_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    with redis_server.client() as client:
        client.set("before-restart", 1)

    redis_server.restart()

    assert redis_server.port == port
    assert redis_server.is_running()
    with redis_server.client() as client:
        assert client.ping()
        assert client.get("before-restart") is None


def test_redis_server_kill_then_start(redis_server: RedisServer) -> None:
    redis_server.kill()
    assert not redis_server.is_running()

    redis_server.start()

    assert redis_server.ping()


def test_redis_server_start_retries_port_in_use(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([redis_server.port])
    real_free_port = server_module.free_port
    monkeypatch.setattr(
        server_module, "free_port", lambda: next(ports, None) or real_free_port()
    )

    with RedisServer() as server:
        assert server.port != redis_server.port
        assert server.ping()


@pytest.mark.usefixtures("redis_installed")
def test_redis_server_start_error_shows_log() -> None:
    server = RedisServer(extra_args=["--no-such-directive", "yes"])
    try:
        with pytest.raises(RedisServerError) as raised:
            server.start()
    finally:
        server.close()

    message = str(raised.value)
    assert "exited with code 1" in message
    assert "no-such-directive" in message
    assert not server.is_running()


@pytest.mark.usefixtures("redis_installed")
def test_redis_server_replica_copies_primary() -> None:
    with RedisServer() as primary, RedisServer(replica_of=primary) as replica:
        replica.wait_for_replication_link()
        with primary.client() as client:
            client.set("replicated", "yes")
            assert client.wait(1, 5000) == 1

        with replica.client() as client:
            assert client.get("replicated") == b"yes"
        assert replica.role() == "slave"


@pytest.mark.usefixtures("redis_installed")
def test_redis_server_close_removes_directory() -> None:
    server = RedisServer()
    server.start()
    directory = server.directory

    server.close()

    assert not server.is_running()
    assert not directory.exists()


@pytest.mark.slow
def test_redis_cluster_routes_keys_to_three_primaries(
    redis_cluster: RedisCluster,
) -> None:
    primaries = redis_cluster.primaries()
    assert len(primaries) == 3
    keys = {
        primary.port: key_served_by(redis_cluster, primary) for primary in primaries
    }

    startup_nodes = [
        ClusterNode(host, port) for host, port in redis_cluster.startup_nodes
    ]
    with ClusterClient(startup_nodes=startup_nodes, decode_responses=True) as client:
        for port, key in keys.items():
            client.set(key, port)

    for primary in primaries:
        with primary.client(decode_responses=True) as direct:
            assert direct.get(keys[primary.port]) == str(primary.port)


@pytest.mark.slow
def test_redis_cluster_failover_promotes_replica(
    redis_cluster_for_failover: RedisCluster,
) -> None:
    cluster = redis_cluster_for_failover
    key = "session:failover"
    primary = cluster.primary_for_key(key)
    replica = cluster.replica_of(primary)

    with ClusterClient.from_url(cluster.url, decode_responses=True) as client:
        client.set(key, "before")
        with primary.client() as direct:
            assert direct.wait(1, 5000) == 1

        primary.stop()
        cluster.wait_for_promotion(replica)

        assert cluster.primary_for_key(key) is replica
        assert client.get(key) == "before"
        client.set(key, "after")

    with replica.client(decode_responses=True) as direct:
        assert direct.get(key) == "after"


@pytest.mark.slow
def test_redis_sentinel_reports_primary(redis_sentinel: RedisSentinelGroup) -> None:
    primary = redis_sentinel.primary()
    (replica,) = redis_sentinel.replicas()

    with sentinel_client(redis_sentinel) as sentinel:
        assert sentinel.discover_master(redis_sentinel.service_name) == primary.address
        assert sentinel.discover_slaves(redis_sentinel.service_name) == [
            replica.address
        ]
        with sentinel.master_for(redis_sentinel.service_name) as client:
            assert client.set("through-sentinel", 1)

    assert primary.role() == "master"
    assert replica.role() == "slave"


@pytest.mark.slow
def test_redis_sentinel_failover_promotes_replica(
    redis_sentinel_for_failover: RedisSentinelGroup,
) -> None:
    group = redis_sentinel_for_failover
    (replica,) = group.replicas()

    stopped = group.stop_primary()
    group.wait_for_promotion(replica)

    assert not stopped.is_running()
    assert group.primary() is replica
    assert replica.role() == "master"
    with sentinel_client(group) as sentinel:
        assert sentinel.discover_master(group.service_name) == replica.address
        with sentinel.master_for(group.service_name, decode_responses=True) as client:
            client.set("after-failover", "yes")
            assert client.get("after-failover") == "yes"
