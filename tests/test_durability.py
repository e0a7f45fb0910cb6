"""The wait_replicas option: WAIT after each write, on the writing connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import redis.asyncio

from bearer_mw import (
    AsyncSessionStore,
    ConfigurationError,
    SessionStore,
    StoreUnavailableError,
)
from tests.redis_servers import RedisServer
from tests.test_cluster import ACL_PASSWORD, ACL_USER, acl_topology

STORE_CLASSES = [SessionStore, AsyncSessionStore]


@pytest.fixture
def replica(redis_server: RedisServer, redis_url: str) -> Iterator[RedisServer]:
    """A replica of the session's server, linked before the test starts."""
    with RedisServer(replica_of=redis_server, name="durability-replica") as server:
        server.wait_for_replication_link()
        yield server


#: Commands that only a store sends, never its scripts. Counts leave out
#: connection setup (HELLO, CLIENT SETINFO), INFO, and the GET and ZRANGE that
#: scripts call, because commandstats counts commands run inside scripts too.
STORE_COMMANDS = {"evalsha", "eval", "wait"}


def commands_run(
    url: str, action: Callable[[], object], commands: set[str] = STORE_COMMANDS
) -> dict[str, int]:
    """Run ``action`` and return how often the server ran each of ``commands``."""

    def calls() -> dict[str, int]:
        with redis.Redis.from_url(url) as client:
            stats = client.info("commandstats")
        return {name: int(values["calls"]) for name, values in stats.items()}

    before = calls()
    action()
    after = calls()
    grown = {
        name.removeprefix("cmdstat_"): count - before.get(name, 0)
        for name, count in after.items()
        if count != before.get(name, 0)
    }
    return {name: count for name, count in grown.items() if name in commands}


class Stores:
    """Sync and async stores on one URL, called through one sync interface."""

    def __init__(self, url: str, driver: str, **client_options: Any) -> None:
        self.url = url
        self.driver = driver
        self.client_options = client_options
        self._loop = asyncio.new_event_loop()
        self._clients: list[Any] = []

    def open(self, **settings: Any) -> Callable[..., Any]:
        """Return ``call(method, *args)`` for a new store with ``settings``."""
        if self.driver == "async":
            async_client = redis.asyncio.Redis.from_url(self.url, **self.client_options)
            self._clients.append(async_client)
            async_store = AsyncSessionStore(async_client, **settings)

            def call_async(method: str, *args: Any) -> Any:
                coroutine = getattr(async_store, method)(*args)
                return self._loop.run_until_complete(coroutine)

            return call_async

        client = redis.Redis.from_url(self.url, **self.client_options)
        self._clients.append(client)
        store = SessionStore(client, **settings)
        return lambda method, *args: getattr(store, method)(*args)

    def close(self) -> None:
        for client in self._clients:
            if isinstance(client, redis.asyncio.Redis):
                self._loop.run_until_complete(client.aclose())
            else:
                client.close()
        self._loop.close()


@pytest.fixture(params=["sync", "async"])
def stores(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Stores]:
    opened = Stores(redis_url, request.param)
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize("store_class", STORE_CLASSES)
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"wait_replicas": -1}, id="negative-replicas"),
        pytest.param({"wait_replicas": True}, id="bool-replicas"),
        pytest.param({"wait_replicas": "1"}, id="str-replicas"),
        pytest.param({"wait_timeout": 0}, id="zero-timeout"),
        pytest.param({"wait_timeout": 0.0004}, id="below-one-ms"),
        pytest.param({"wait_timeout": timedelta(seconds=-1)}, id="negative-timeout"),
        pytest.param({"wait_timeout": float("inf")}, id="infinite-timeout"),
    ],
)
def test_store_rejects_invalid_wait_settings(
    store_class: type[SessionStore | AsyncSessionStore], settings: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        store_class(redis.Redis(), **settings)


@pytest.mark.parametrize("store_class", STORE_CLASSES)
def test_store_converts_wait_timeout_to_milliseconds(
    store_class: type[SessionStore | AsyncSessionStore],
) -> None:
    assert store_class(redis.Redis(), wait_timeout=0.25).wait_timeout_ms == 250
    assert (
        store_class(redis.Redis(), wait_timeout=timedelta(seconds=2)).wait_timeout_ms
        == 2000
    )


def test_store_without_wait_sends_no_wait(stores: Stores) -> None:
    call = stores.open()

    call("create_session", "alice")

    counts = commands_run(stores.url, lambda: call("create_session", "alice"))

    assert counts == {"evalsha": 1}


WRITES = [
    pytest.param("create_session", id="create"),
    pytest.param("renew_session", id="renew"),
    pytest.param("invalidate_session", id="invalidate"),
    pytest.param("invalidate_user_sessions", id="invalidate-user"),
]


def run_write(call: Callable[..., Any], write: str) -> object:
    if write == "create_session":
        return call("create_session", "alice")
    token, _ = call("create_session", "alice")
    argument = "alice" if write == "invalidate_user_sessions" else token
    return call(write, argument)


@pytest.mark.parametrize("write", WRITES)
def test_durable_write_waits_for_replica(
    stores: Stores, replica: RedisServer, write: str
) -> None:
    call = stores.open(wait_replicas=1, wait_timeout=timedelta(seconds=2))
    run_write(call, write)

    counts = commands_run(stores.url, lambda: run_write(call, write))

    assert counts["wait"] == counts["evalsha"]
    assert "eval" not in counts


@pytest.mark.parametrize("write", WRITES)
def test_durable_write_without_replica_raises(stores: Stores, write: str) -> None:
    call = stores.open(wait_replicas=1, wait_timeout=timedelta(milliseconds=50))
    plain = stores.open()
    argument = "alice"
    if write in {"renew_session", "invalidate_session"}:
        argument, _ = plain("create_session", "alice")

    with pytest.raises(StoreUnavailableError) as caught:
        call(write, argument)

    assert caught.value.operation == write
    assert "0 of 1 required replicas" in str(caught.value)
    assert "retry" in str(caught.value)


def test_durable_invalidate_applies_on_primary_despite_error(stores: Stores) -> None:
    plain = stores.open()
    durable = stores.open(wait_replicas=1, wait_timeout=timedelta(milliseconds=50))
    token, _ = plain("create_session", "alice")

    with pytest.raises(StoreUnavailableError) as caught:
        durable("invalidate_session", token)

    assert token not in str(caught.value)
    assert plain("find_session", token) is None


def test_durable_find_session_sends_one_command(stores: Stores) -> None:
    call = stores.open(wait_replicas=1, wait_timeout=timedelta(milliseconds=50))
    token, _ = stores.open()("create_session", "alice")

    counts = commands_run(
        stores.url, lambda: call("find_session", token), {"get", *STORE_COMMANDS}
    )

    assert counts == {"get": 1}


def test_durable_write_loads_flushed_script(
    stores: Stores, replica: RedisServer
) -> None:
    call = stores.open(wait_replicas=1, wait_timeout=timedelta(seconds=2))
    with redis.Redis.from_url(stores.url) as admin:
        admin.script_flush()

    counts = commands_run(stores.url, lambda: call("create_session", "alice"))

    assert counts.get("eval") == 1
    assert counts.get("wait") == 2


def test_durable_write_runs_as_acl_user(stores: Stores, replica: RedisServer) -> None:
    # The suite in tests/test_cluster.py never sends WAIT, so the ACL user's
    # right to it is checked here.
    acl_topology(stores.url)
    restricted = Stores(
        stores.url, stores.driver, username=ACL_USER, password=ACL_PASSWORD
    )
    try:
        call = restricted.open(wait_replicas=1, wait_timeout=timedelta(seconds=2))
        token, _ = call("create_session", "alice")
        assert call("renew_session", token) is not None
        assert call("invalidate_user_sessions", "alice") == 1
    finally:
        restricted.close()
