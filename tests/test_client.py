"""Tests of redis_from_url: URL forms, bounded timeouts and the pool bound."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster
from redis.asyncio.connection import UnixDomainSocketConnection as AsyncUnixConnection
from redis.connection import SSLConnection, UnixDomainSocketConnection

from bearer_mw import (
    AsyncSessionStore,
    ConfigurationError,
    SessionStore,
    StoreUnavailableError,
)
from bearer_mw.client import DEFAULT_MAX_CONNECTIONS, redis_from_url
from bearer_mw.topologies import close_client
from tests.conftest import require_redis_binaries
from tests.redis_servers import RedisServer


def connection_kwargs(client: redis.Redis | redis.asyncio.Redis) -> dict[str, object]:
    return dict(client.connection_pool.connection_kwargs)


@pytest.mark.parametrize("use_asyncio", [False, True], ids=["sync", "asyncio"])
def test_redis_from_url_tcp_settings(use_asyncio: bool) -> None:
    client = redis_from_url(
        "redis://reader:secret@127.0.0.1:6390/3", timeout=1.5, asyncio=use_asyncio
    )
    options = connection_kwargs(client)
    pool = client.connection_pool

    assert options["host"] == "127.0.0.1"
    assert options["port"] == 6390
    assert options["db"] == 3
    assert options["username"] == "reader"
    assert options["password"] == "secret"
    assert options["socket_timeout"] == 1.5
    assert options["socket_connect_timeout"] == 1.5
    assert options["health_check_interval"] == 30
    assert options["retry"].get_retries() == 0  # type: ignore[attr-defined]
    assert options["retry_on_error"] == []
    assert pool.max_connections == DEFAULT_MAX_CONNECTIONS
    assert pool.max_connections == 256
    assert pool.timeout == 1.5  # type: ignore[union-attr]


def test_redis_from_url_client_types() -> None:
    sync_client = redis_from_url("redis://127.0.0.1:6390")
    async_client = redis_from_url("redis://127.0.0.1:6390", asyncio=True)

    assert isinstance(sync_client, redis.Redis)
    assert isinstance(sync_client.connection_pool, redis.BlockingConnectionPool)
    assert isinstance(async_client, redis.asyncio.Redis)
    assert isinstance(
        async_client.connection_pool, redis.asyncio.BlockingConnectionPool
    )


def test_redis_from_url_rediss_uses_tls() -> None:
    client = redis_from_url("rediss://127.0.0.1:6390/0")

    assert client.connection_pool.connection_class is SSLConnection


@pytest.mark.parametrize("use_asyncio", [False, True], ids=["sync", "asyncio"])
def test_redis_from_url_unix_socket(use_asyncio: bool) -> None:
    client = redis_from_url("unix:///run/redis/redis.sock?db=2", asyncio=use_asyncio)
    options = connection_kwargs(client)
    expected = AsyncUnixConnection if use_asyncio else UnixDomainSocketConnection

    assert client.connection_pool.connection_class is expected
    assert options["path"] == "/run/redis/redis.sock"
    assert options["db"] == 2
    assert options["socket_timeout"] == 2.0


def test_redis_from_url_pool_settings() -> None:
    client = redis_from_url(
        "redis://127.0.0.1:6390",
        max_connections=8,
        pool_timeout=0.5,
        health_check_interval=0,
        client_name="sessions",
    )
    options = connection_kwargs(client)

    assert client.connection_pool.max_connections == 8
    assert client.connection_pool.timeout == 0.5  # type: ignore[attr-defined]
    assert options["health_check_interval"] == 0
    assert options["client_name"] == "sessions"


def test_redis_from_url_query_string_wins() -> None:
    client = redis_from_url("redis://127.0.0.1:6390/0?socket_timeout=7", timeout=1)

    assert connection_kwargs(client)["socket_timeout"] == 7.0
    assert connection_kwargs(client)["socket_connect_timeout"] == 1.0


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:6390", id="http"),
        pytest.param("redis+memcached://127.0.0.1:7000", id="unknown-plus-scheme"),
        pytest.param("127.0.0.1:6390", id="no-scheme"),
    ],
)
def test_redis_from_url_rejects_unknown_scheme(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported Redis URL scheme"):
        redis_from_url(url)


def test_redis_from_url_builds_cluster_client(redis_cluster: Any) -> None:
    host, port = redis_cluster.startup_nodes[0]
    client = redis_from_url(f"redis+cluster://{host}:{port}", timeout=2)
    try:
        assert isinstance(client, redis.cluster.RedisCluster)
        assert client.ping() is True
    finally:
        client.close()


def test_redis_from_url_builds_sentinel_client(redis_sentinel: Any) -> None:
    hosts = ",".join(f"{h}:{p}" for h, p in redis_sentinel.sentinel_addresses)
    url = f"redis+sentinel://{hosts}/{redis_sentinel.service_name}"
    client = redis_from_url(url, timeout=2)
    try:
        assert client.set("bearer_mw:probe", "1") is True
        assert client.get("bearer_mw:probe") == b"1"
    finally:
        close_client(client)


def test_redis_from_url_error_hides_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        redis_from_url("memcached://user:hunter2@127.0.0.1:6390")

    assert "hunter2" not in str(caught.value)
    assert "memcached://" in str(caught.value)


def test_redis_from_url_rejects_bad_port() -> None:
    with pytest.raises(ConfigurationError, match="invalid Redis URL"):
        redis_from_url("redis://127.0.0.1:notaport/0")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        pytest.param("timeout", 0, id="zero-timeout"),
        pytest.param("timeout", -1.0, id="negative-timeout"),
        pytest.param("timeout", float("inf"), id="infinite-timeout"),
        pytest.param("timeout", True, id="bool-timeout"),
        pytest.param("pool_timeout", 0, id="zero-pool-timeout"),
        pytest.param("max_connections", 0, id="zero-connections"),
        pytest.param("max_connections", 2.5, id="fractional-connections"),
        pytest.param("health_check_interval", -1, id="negative-health-check"),
    ],
)
def test_redis_from_url_rejects_bad_setting(setting: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=setting):
        redis_from_url("redis://127.0.0.1:6390", **{setting: value})


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_closed_port_fails_fast() -> None:
    client = redis_from_url(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.5)
    started = time.monotonic()

    with pytest.raises(redis.ConnectionError):
        client.ping()

    assert time.monotonic() - started < 0.5
    client.close()


def test_silent_server_times_out_once(silent_server: int) -> None:
    client = redis_from_url(f"redis://127.0.0.1:{silent_server}/0", timeout=0.4)
    started = time.monotonic()

    with pytest.raises(redis.TimeoutError):
        client.ping()

    elapsed = time.monotonic() - started
    # One read timeout, not several: redis-py's own retries are off.
    assert elapsed >= 0.35
    assert elapsed < 0.75
    client.close()


def test_silent_server_times_out_once_asyncio(silent_server: int) -> None:
    async def ping() -> float:
        client = redis_from_url(
            f"redis://127.0.0.1:{silent_server}/0", timeout=0.4, asyncio=True
        )
        started = time.monotonic()
        try:
            with pytest.raises(redis.TimeoutError):
                await client.ping()
            return time.monotonic() - started
        finally:
            await client.aclose()

    elapsed = asyncio.run(ping())

    assert elapsed >= 0.35
    assert elapsed < 0.75


def test_store_over_silent_server_bounded(silent_server: int) -> None:
    client = redis_from_url(f"redis://127.0.0.1:{silent_server}/0", timeout=0.3)
    store = SessionStore(client)
    started = time.monotonic()

    with pytest.raises(StoreUnavailableError, match="during find_session"):
        store.find_session("AAAAAAAAAAAA." + "A" * 43)

    # The store's own single retry doubles the wait, and nothing more.
    assert time.monotonic() - started < 1.2
    client.close()


def test_client_works_against_real_redis(redis_url: str) -> None:
    client = redis_from_url(redis_url)
    store = SessionStore(client)

    token, created = store.create_session("alice", {"scopes": "read"})
    found = store.find_session(token)

    assert found is not None
    assert found.user_id == "alice"
    assert found.session_id == created.session_id
    client.close()


def test_unix_socket_against_real_redis(tmp_path: Path) -> None:
    require_redis_binaries("redis-server")
    path = tmp_path / "redis.sock"
    with RedisServer(extra_args=["--unixsocket", str(path)], name="unix") as _:
        client = redis_from_url(f"unix://{path}?db=1")
        try:
            assert client.ping() is True
            assert client.connection_pool.connection_kwargs["db"] == 1
        finally:
            client.close()


def test_asyncio_pool_bounds_concurrent_requests(redis_url: str) -> None:
    max_connections = 8

    async def run() -> tuple[list[object], int]:
        client = redis_from_url(
            redis_url, asyncio=True, max_connections=max_connections
        )
        store = AsyncSessionStore(client)
        token, _ = await store.create_session("alice")
        try:
            # BLPOP on an empty list keeps its connection busy for 20 ms, so 256
            # callers must queue for the 8 connections.
            results = await asyncio.gather(
                *(client.blpop(["bmw:test:empty"], timeout=0.02) for _ in range(128)),
                *(store.find_session(token) for _ in range(128)),
                return_exceptions=True,
            )
            info = await client.info("clients")
            return results, int(info["connected_clients"])
        finally:
            await client.aclose()

    results, connected = asyncio.run(run())
    failures = [result for result in results if isinstance(result, BaseException)]

    assert failures == []
    assert all(result is None for result in results[:128])
    assert all(result is not None for result in results[128:])
    assert connected <= max_connections
