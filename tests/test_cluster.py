"""The store suite over Redis Cluster, Sentinel and an ACL-restricted user.

Every test of ``tests/test_store.py`` that runs on any backend runs here again,
unchanged, once per driver and topology: a three-primary cluster, a
Sentinel-managed primary, and a single server reached as an ACL user allowed
only the commands that ``docs/deployment.md`` lists. The rest of the module
covers what only a cluster has: URL parsing, routing of the durable ``WAIT``,
failover, and two app server processes sharing one cluster.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio

import tests.test_store as store_suite
from bearer_mw import (
    ConfigurationError,
    SessionStore,
    StoreUnavailableError,
)
from bearer_mw.records import KeySpace
from bearer_mw.tokens import user_tag
from bearer_mw.topologies import (
    ClusterURL,
    aclose_client,
    close_client,
    cluster_from_url,
    parse_cluster_url,
    sentinel_from_url,
    topology_from_url,
)
from tests.redis_servers import RedisCluster, RedisSentinelGroup, free_port
from tests.store_support import (
    Backend,
    Driver,
    ManualClock,
    StoreDriver,
    StoreHarness,
)

#: The ACL user of the "acl" topology: the commands the store sends itself,
#: the commands its Lua scripts call, and the key prefixes the suite uses.
ACL_USER = "bearer_mw_store"
ACL_PASSWORD = "store-password-for-tests"
ACL_RULES = [
    "reset",
    "on",
    f">{ACL_PASSWORD}",
    "~bmw:*",
    "~app:sessions:*",
    "~one:*",
    "~two:*",
    "resetchannels",
    "-@all",
    # Sent by the store.
    "+get",
    "+mget",
    "+zrange",
    "+evalsha",
    "+eval",
    "+wait",
    # Called inside the Lua scripts.
    "+set",
    "+del",
    "+zadd",
    "+zrem",
    "+zremrangebyscore",
    "+zcard",
    "+zscore",
    "+pexpireat",
]


def cluster_url(cluster: RedisCluster) -> str:
    """Return a redis+cluster URL that lists every node of ``cluster``."""
    nodes = ",".join(f"{host}:{port}" for host, port in cluster.startup_nodes)
    return f"redis+cluster://{nodes}"


def sentinel_url(group: RedisSentinelGroup) -> str:
    """Return a redis+sentinel URL for the primary that ``group`` monitors."""
    hosts = ",".join(f"{host}:{port}" for host, port in group.sentinel_addresses)
    return f"redis+sentinel://{hosts}/{group.service_name}"


@dataclass(frozen=True)
class Topology:
    """How to reach one deployment: a client factory and a way to empty it."""

    name: str
    sync_client: Callable[[], Any]
    async_client: Callable[[], Any]
    admin_client: Callable[[], Any]
    flush: Callable[[], None]


class TopologyHarness(StoreHarness):
    """The harness of tests/test_store.py, over one topology.

    ``raw`` is a bytes client with full rights on the same data, for reading
    keys the way Redis stores them.
    """

    def __init__(self, topology: Topology, driver: Driver) -> None:
        # StoreHarness.__init__ would connect to a single server, so this sets
        # the attributes that the inherited methods read.
        self.backend = Backend(driver, "redis")
        self.redis_url = None
        self.topology = topology
        self.clock = ManualClock()
        self._loop = asyncio.new_event_loop() if driver == "async" else None
        self._clients: list[Any] = []
        topology.flush()
        self.raw = topology.admin_client()
        self._clients.append(self.raw)

    def new_client(self, **options: Any) -> Any:
        """Create a client of the harness's driver for the topology."""
        assert not options, "topology clients take no per-test options"
        if self.backend.driver == "async":
            client = self.topology.async_client()
        else:
            client = self.topology.sync_client()
        self._clients.append(client)
        return client

    def all_keys(self) -> list[bytes]:
        """Return every key of the topology, on every primary of a cluster."""
        return sorted(self.raw.scan_iter(count=1000))

    def close(self) -> None:
        """Close every client and the event loop."""
        for client in self._clients:
            if isinstance(client, redis.asyncio.Redis | redis.asyncio.RedisCluster):
                assert self._loop is not None
                self._loop.run_until_complete(aclose_client(client))
            else:
                close_client(client)
        if self._loop is not None:
            self._loop.close()


def cluster_topology(cluster: RedisCluster) -> Topology:
    url = cluster_url(cluster)
    return Topology(
        "cluster",
        sync_client=lambda: cluster_from_url(url, timeout=5),
        async_client=lambda: cluster_from_url(url, timeout=5, asyncio=True),
        admin_client=lambda: cluster_from_url(url, timeout=5),
        flush=cluster.flush_all,
    )


def sentinel_topology(group: RedisSentinelGroup) -> Topology:
    url = sentinel_url(group)
    return Topology(
        "sentinel",
        sync_client=lambda: sentinel_from_url(url, timeout=5),
        async_client=lambda: sentinel_from_url(url, timeout=5, asyncio=True),
        admin_client=lambda: sentinel_from_url(url, timeout=5),
        flush=group.flush_all,
    )


def acl_topology(redis_url: str) -> Topology:
    with redis.Redis.from_url(redis_url) as admin:
        admin.acl_setuser(ACL_USER, reset=True)
        admin.execute_command("ACL", "SETUSER", ACL_USER, *ACL_RULES)
    options = {
        "username": ACL_USER,
        "password": ACL_PASSWORD,
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
    }
    return Topology(
        "acl",
        sync_client=lambda: redis.Redis.from_url(redis_url, **options),
        async_client=lambda: redis.asyncio.Redis.from_url(redis_url, **options),
        admin_client=lambda: redis.Redis.from_url(redis_url),
        # The redis_url fixture flushed the server already.
        flush=lambda: None,
    )


TOPOLOGIES = [
    pytest.param((driver, name), id=f"{driver}-{name}")
    for name in ("cluster", "sentinel", "acl")
    for driver in ("sync", "async")
]


@pytest.fixture(params=TOPOLOGIES)
def harness(request: pytest.FixtureRequest) -> Iterator[TopologyHarness]:
    driver, name = request.param
    if name == "cluster":
        topology = cluster_topology(request.getfixturevalue("redis_cluster"))
    elif name == "sentinel":
        topology = sentinel_topology(request.getfixturevalue("redis_sentinel"))
    else:
        topology = acl_topology(request.getfixturevalue("redis_url"))
    opened = TopologyHarness(topology, driver)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def store(harness: TopologyHarness) -> StoreDriver:
    """The store of tests/test_store.py, over the harness's topology."""
    return harness.open_store(
        active_period=timedelta(milliseconds=store_suite.ACTIVE_MS),
        idle_period=timedelta(milliseconds=store_suite.IDLE_MS),
        renewal_grace=timedelta(milliseconds=store_suite.GRACE_MS),
    )


def _runs_on_every_backend(test: object) -> bool:
    # Tests narrowed to some backends check fakeredis or single-server
    # details (command counts from INFO, unreachable ports); the rest are
    # the store's behaviour and must hold on every topology.
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize" and mark.args[0] in {"harness", "store_class"}:
            return False
    return True


SHARED_TESTS = {
    name: test
    for name, test in vars(store_suite).items()
    if name.startswith("test_") and callable(test) and _runs_on_every_backend(test)
}
globals().update(SHARED_TESTS)


def test_shared_suite_covers_every_operation() -> None:
    # Guards against a filter that silently drops whole operations.
    for operation in (
        "create_session",
        "get_session",
        "validate_session",
        "renew_session",
        "invalidate_session",
        "invalidate_user_sessions",
        "get_user_sessions",
    ):
        assert any(name.startswith(f"test_{operation}") for name in SHARED_TESTS), (
            operation
        )


# URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "redis+cluster://10.0.0.1:7000",
            ClusterURL((("10.0.0.1", 7000),)),
            id="one-node",
        ),
        pytest.param(
            "redis+cluster://a:7000,b,[::1]:7002/",
            ClusterURL((("a", 7000), ("b", 6379), ("::1", 7002))),
            id="several-nodes-default-port-ipv6",
        ),
        pytest.param(
            "redis+cluster://app:p%40ss@a:7000",
            ClusterURL((("a", 7000),), "app", "p@ss"),
            id="credentials",
        ),
        pytest.param(
            "redis+cluster://secret@a:7000",
            ClusterURL((("a", 7000),), None, "secret"),
            id="password-only",
        ),
    ],
)
def test_parse_cluster_url(url: str, expected: ClusterURL) -> None:
    assert parse_cluster_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://a:7000", id="plain-scheme"),
        pytest.param("redis+cluster://", id="no-host"),
        pytest.param("redis+cluster://a:7000/1", id="database"),
        pytest.param("redis+cluster://a:0", id="port-zero"),
        pytest.param("redis+cluster://a:70000", id="port-too-large"),
        pytest.param("redis+cluster://a:x", id="port-not-number"),
        pytest.param("redis+cluster://a:7000,,b", id="empty-host"),
        pytest.param("redis+cluster://[::1:7000", id="open-bracket"),
        pytest.param("redis+cluster://a:7000?ssl=true", id="query"),
    ],
)
def test_parse_cluster_url_rejects(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_cluster_url(url)


def test_cluster_url_error_hides_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_cluster_url("redis+cluster://app:hunter2@a:7000/5")

    assert "hunter2" not in str(caught.value)


def test_cluster_url_repr_hides_password() -> None:
    assert "hunter2" not in repr(parse_cluster_url("redis+cluster://a:hunter2@b:1"))


def test_topology_from_url_rejects_plain_redis() -> None:
    with pytest.raises(ConfigurationError):
        topology_from_url("redis://127.0.0.1:6379", timeout=1)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_cluster_from_url_rejects_bad_timeout(timeout: float) -> None:
    with pytest.raises(ConfigurationError):
        cluster_from_url("redis+cluster://127.0.0.1:1", timeout=timeout)


def test_cluster_from_url_unreachable_raises_store_unavailable() -> None:
    port = free_port()
    started = time.monotonic()

    with pytest.raises(StoreUnavailableError) as caught:
        cluster_from_url(f"redis+cluster://127.0.0.1:{port}", timeout=0.5)

    assert caught.value.operation == "connect"
    assert time.monotonic() - started < 10


def test_cluster_from_url_reaches_every_primary(redis_cluster: RedisCluster) -> None:
    with cluster_from_url(cluster_url(redis_cluster), timeout=5) as client:
        primaries = {node.port for node in client.get_primaries()}

    assert primaries == {node.port for node in redis_cluster.primaries()}


def test_topology_from_url_builds_async_cluster(redis_cluster: RedisCluster) -> None:
    async def ping() -> bool:
        client = topology_from_url(cluster_url(redis_cluster), timeout=5, asyncio=True)
        try:
            assert isinstance(client, redis.asyncio.RedisCluster)
            return bool(await client.ping())
        finally:
            await client.aclose()

    assert asyncio.run(ping())


# Durable writes on a cluster


def slot_nodes(cluster: RedisCluster, user_id: str) -> tuple[Any, Any]:
    """Return the primary that owns ``user_id``'s keys and its replica."""
    index = KeySpace().index_key(user_tag(user_id))
    primary = cluster.primary_for_key(index)
    return primary, cluster.replica_of(primary)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_durable_write_waits_for_slot_replica(
    redis_cluster_for_failover: RedisCluster, driver: str
) -> None:
    # With the replica of the slot's primary paused, WAIT on the connection
    # that wrote must count zero replicas. WAIT sent to another node, or on
    # another connection, would count the replicas that are still running.
    cluster = redis_cluster_for_failover
    harness = TopologyHarness(cluster_topology(cluster), driver)
    try:
        store = harness.open_store(
            wait_replicas=1, wait_timeout=timedelta(milliseconds=300)
        )
        token, _ = store.create_session("durable-user")
        _, replica = slot_nodes(cluster, "durable-user")

        replica.pause()
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                store.invalidate_session(token)
        finally:
            replica.resume()

        assert caught.value.operation == "invalidate_session"
        assert "0 of 1" in str(caught.value)
        assert token not in str(caught.value)
        assert store.find_session(token) is None
        other, _ = store.create_session("durable-user")
        assert store.invalidate_session(other) is True
    finally:
        harness.close()


def test_cluster_failover_keeps_sessions_and_revocations(
    redis_cluster_for_failover: RedisCluster,
) -> None:
    cluster = redis_cluster_for_failover
    # The socket timeout exceeds the WAIT timeout, so WAIT replies in time.
    client = cluster_from_url(cluster_url(cluster), timeout=3)
    store = SessionStore(client, wait_replicas=1, wait_timeout=timedelta(seconds=1))
    try:
        kept, _ = store.create_session("failover-user")
        revoked, _ = store.create_session("failover-user")
        renewed = store.renew_session(store.create_session("failover-user")[0])
        assert renewed is not None
        assert store.invalidate_session(revoked) is True
        for _ in range(3):
            store.create_session("failover-gone")
        assert store.invalidate_user_sessions("failover-gone") == 3

        primary, replica = slot_nodes(cluster, "failover-user")
        primary.kill()
        cluster.wait_for_promotion(replica, timeout=30)

        assert store.validate_session(kept) is not None
        assert store.validate_session(renewed[0]) is not None
        assert store.find_session(revoked) is None
        assert store.get_user_sessions("failover-gone") == []
        assert len(store.get_user_sessions("failover-user")) == 2
        # The promoted replica has no replica of its own until the old primary
        # rejoins, so a durable write now cannot be confirmed.
        with pytest.raises(StoreUnavailableError, match="0 of 1"):
            store.create_session("failover-user")
    finally:
        client.close()


# Two app server processes on one cluster

APP_SERVER = """
import sys

import uvicorn

from bearer_mw import AsyncBearerMiddleware, AsyncSessionStore
from bearer_mw.topologies import cluster_from_url

url, port = sys.argv[1], int(sys.argv[2])
store = AsyncSessionStore(cluster_from_url(url, timeout=5, asyncio=True))


async def respond(send, status, body):
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


async def app(scope, receive, send):
    path = scope["path"]
    session = scope.get("bearer_mw.session")
    if path == "/health":
        await respond(send, 200, "ok")
    elif path == "/login":
        token, _ = await store.create_session(scope["query_string"].decode())
        await respond(send, 200, token)
    elif session is None:
        await respond(send, 401, "no session")
    elif path == "/logout":
        await store.invalidate_user_sessions(session.user_id)
        await respond(send, 200, "bye")
    else:
        await respond(send, 200, session.user_id)


uvicorn.run(
    AsyncBearerMiddleware(app, store),
    host="127.0.0.1",
    port=port,
    lifespan="off",
    log_level="warning",
)
"""


@pytest.fixture
def app_servers(redis_cluster: RedisCluster) -> Iterator[list[str]]:
    """Two uvicorn processes, each with its own store on the session's cluster."""
    processes: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    try:
        for _ in range(2):
            port = free_port()
            command = [sys.executable, "-c", APP_SERVER, cluster_url(redis_cluster)]
            processes.append(subprocess.Popen([*command, str(port)]))
            bases.append(f"http://127.0.0.1:{port}")
        for base, process in zip(bases, processes, strict=True):
            wait_for_http(base, process)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_http(base: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the server at ``base`` answers /health, for at most 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app server for {base} exited with code {process.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"app server for {base} did not answer /health within 30 s")


def test_two_app_servers_share_sessions(app_servers: list[str]) -> None:
    first, second = app_servers

    token = httpx.get(f"{first}/login?shared-user", timeout=5).text
    headers = {"Authorization": f"Bearer {token}"}

    assert httpx.get(f"{second}/me", headers=headers, timeout=5).text == "shared-user"
    assert httpx.get(f"{first}/me", headers=headers, timeout=5).text == "shared-user"
    assert httpx.get(f"{second}/logout", headers=headers, timeout=5).status_code == 200
    assert httpx.get(f"{first}/me", headers=headers, timeout=5).status_code == 401
