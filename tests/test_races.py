"""Concurrent renewals, logouts, cancelled lookups and many requests, on real Redis."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, cast

import pytest
import redis
import redis.asyncio

from bearer_mw import AsyncSessionStore, BearerMiddleware, SessionStore
from bearer_mw.client import redis_from_url
from bearer_mw.operations import READ_COMMAND, Operations
from bearer_mw.records import KeySpace
from bearer_mw.request_auth import AsyncRequestAuth
from bearer_mw.session import Periods, Session, system_clock
from tests.fault_support import (
    PRIVATE,
    RULES,
    AsgiStack,
    Clock,
    WhoAmIApp,
    WsgiServerThread,
    admin_command,
    fault_server,
)
from tests.redis_servers import RedisServer

RENEWERS = 16
RACE_ROUNDS = 25
MANY_REQUESTS = 300


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as connected:
        yield connected


@pytest.fixture
def store(client: redis.Redis) -> SessionStore:
    return SessionStore(client)


def run_together(*actions: Callable[[], Any]) -> list[Any]:
    """Run each action in its own thread, released at the same moment."""
    barrier = threading.Barrier(len(actions))

    def released(action: Callable[[], Any]) -> Any:
        barrier.wait(10)
        return action()

    with ThreadPoolExecutor(len(actions)) as executor:
        futures = [executor.submit(released, action) for action in actions]
        return [future.result(30) for future in futures]


def user_session_keys(client: redis.Redis, store: SessionStore, token: str) -> set[str]:
    """Return every session key, live or renewed, of the user behind ``token``."""
    tag = token.split(".", 1)[0]
    pattern = f"{store.key_prefix}s:{{{tag}}}*"
    return {key.decode() for key in client.scan_iter(match=pattern)}


def test_concurrent_renewal_rotates_once(
    client: redis.Redis, store: SessionStore
) -> None:
    token, session = store.create_session("alice", {"plan": "pro"})

    results = run_together(*[lambda: store.renew_session(token)] * RENEWERS)

    assert all(result is not None for result in results)
    successors = {result[0] for result in results}
    assert len(successors) == 1
    successor = successors.pop()
    assert successor != token
    assert {result[1].session_id for result in results} == {
        store.find_session(successor).session_id  # type: ignore[union-attr]
    }
    assert store.find_session(token) is None
    renewed = store.validate_session(successor)
    assert renewed is not None
    assert renewed.user_id == "alice"
    assert renewed.attributes["plan"] == "pro"
    assert renewed.created == session.created
    assert len(store.get_user_sessions("alice")) == 1
    # One live record for the successor, one renewed record for the old token.
    assert len(user_session_keys(client, store, token)) == 2
    # A caller that retries later within the grace window gets the same one.
    again = store.renew_session(token)
    assert again is not None
    assert again[0] == successor


def test_concurrent_async_renewal_rotates_once(redis_url: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = AsyncSessionStore(client)
        try:
            token, _ = await store.create_session("alice")
            results = await asyncio.gather(
                *(store.renew_session(token) for _ in range(RENEWERS))
            )
            assert all(result is not None for result in results)
            successors = {result[0] for result in results if result is not None}
            assert len(successors) == 1
            successor = successors.pop()
            assert await store.find_session(token) is None
            assert await store.validate_session(successor) is not None
            assert len(await store.get_user_sessions("alice")) == 1
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_renewal_after_grace_returns_none(client: redis.Redis) -> None:
    clock = Clock()
    store = SessionStore(client, renewal_grace=timedelta(seconds=1), clock=clock)
    token, _ = store.create_session("alice")
    first = store.renew_session(token)
    assert first is not None

    # The renewed record still exists in Redis, which counts real time, but
    # the store's clock is past the end of the grace window.
    clock.offset = 1_000
    assert store.renew_session(token) is None
    assert store.validate_session(first[0]) is not None


def test_renewed_record_expires_with_grace(
    client: redis.Redis, store: SessionStore
) -> None:
    short = SessionStore(client, renewal_grace=timedelta(milliseconds=200))
    token, _ = short.create_session("alice")
    first = short.renew_session(token)
    assert first is not None
    assert len(user_session_keys(client, store, token)) == 2

    time.sleep(0.3)

    assert short.renew_session(token) is None
    assert user_session_keys(client, store, token) == user_session_keys(
        client, store, first[0]
    )
    assert len(user_session_keys(client, store, token)) == 1


def test_invalidate_old_token_kills_successor(store: SessionStore) -> None:
    token, _ = store.create_session("alice")
    renewed = store.renew_session(token)
    assert renewed is not None

    assert store.invalidate_session(token) is True

    assert store.find_session(renewed[0]) is None
    assert store.renew_session(token) is None
    assert store.get_user_sessions("alice") == []


def test_invalidate_user_kills_pending_successor(store: SessionStore) -> None:
    token, _ = store.create_session("alice")
    renewed = store.renew_session(token)
    assert renewed is not None

    assert store.invalidate_user_sessions("alice") == 1

    assert store.find_session(renewed[0]) is None
    # The renewed record outlives the logout for the grace window, but it
    # must not hand out the deleted successor again.
    assert store.renew_session(token) is None


def test_invalidate_successor_blocks_replay(store: SessionStore) -> None:
    token, _ = store.create_session("alice")
    renewed = store.renew_session(token)
    assert renewed is not None

    assert store.invalidate_session(renewed[0]) is True

    assert store.renew_session(token) is None


def test_logout_racing_renewal_leaves_nothing(
    client: redis.Redis, store: SessionStore
) -> None:
    for _ in range(RACE_ROUNDS):
        token, _ = store.create_session("alice")

        _, renewed = run_together(
            lambda: store.invalidate_session(token),  # noqa: B023
            lambda: store.renew_session(token),  # noqa: B023
        )

        assert store.find_session(token) is None
        if renewed is not None:
            assert store.find_session(renewed[0]) is None
            assert store.renew_session(renewed[0]) is None
        assert store.renew_session(token) is None
        assert store.get_user_sessions("alice") == []
    for key in client.scan_iter(match=f"{store.key_prefix}s:*"):
        value = cast(bytes | None, client.get(key))
        assert value is None or not value.startswith(b"1|"), key


def test_async_logout_racing_renewal_leaves_nothing(redis_url: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = AsyncSessionStore(client)
        try:
            for _ in range(RACE_ROUNDS):
                token, _ = await store.create_session("alice")
                _, renewed = await asyncio.gather(
                    store.invalidate_session(token), store.renew_session(token)
                )
                assert await store.find_session(token) is None
                if renewed is not None:
                    assert await store.find_session(renewed[0]) is None
                assert await store.get_user_sessions("alice") == []
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_logout_everywhere_racing_login(
    client: redis.Redis, store: SessionStore
) -> None:
    logins = 4
    for _ in range(RACE_ROUNDS):
        before = [store.create_session("alice")[0] for _ in range(3)]

        def log_in() -> list[str]:
            return [store.create_session("alice")[0] for _ in range(logins)]

        def log_out_everywhere() -> int:
            return store.invalidate_user_sessions("alice")

        removed, during = run_together(log_out_everywhere, log_in)

        assert removed >= len(before)
        for token in before:
            assert store.find_session(token) is None
        # A login that overlapped the logout may survive it, but only as a
        # session that the user's index lists, so the next logout finds it.
        listed = {session.session_id for session in store.get_user_sessions("alice")}
        for token in during:
            session = store.find_session(token)
            if session is not None:
                assert session.session_id in listed
        store.invalidate_user_sessions("alice")
        for token in [*before, *during]:
            assert store.find_session(token) is None
        assert user_session_keys(client, store, before[0]) == set()


def test_logout_everywhere_racing_renewal(
    client: redis.Redis, store: SessionStore
) -> None:
    for _ in range(RACE_ROUNDS):
        token, _ = store.create_session("alice")

        renewed, _ = run_together(
            lambda: store.renew_session(token),  # noqa: B023
            lambda: store.invalidate_user_sessions("alice"),
        )

        assert store.find_session(token) is None
        if renewed is not None:
            assert store.find_session(renewed[0]) is None
        assert store.renew_session(token) is None
        assert store.get_user_sessions("alice") == []


def test_record_check_rejects_other_tokens_record(
    client: redis.Redis, store: SessionStore
) -> None:
    token_a, _ = store.create_session("alice")
    token_b, _ = store.create_session("bob")
    keys = KeySpace(store.key_prefix)
    record_a = client.get(keys.for_token(token_a).session)
    operations = Operations(keys, Periods(60_000, 60_000), system_clock, 0)

    keys_b = operations.keys_for(token_b)
    assert keys_b is not None
    assert (READ_COMMAND, keys_b.session) == ("GET", keys.for_token(token_b).session)
    record_b = client.get(keys_b.session)
    # B's own record decodes, so the rejection below comes from the check.
    assert operations.found(keys_b.digest, record_b) is not None
    # Feed B's lookup the reply that belongs to A, as a connection that got
    # out of step would.
    assert operations.found(keys_b.digest, record_a) is None


@pytest.mark.parametrize("through_auth", [False, True], ids=["store", "request-auth"])
def test_cancelled_lookup_never_returns_other_record(
    redis_installed: None, through_auth: bool
) -> None:
    """A lookup cancelled mid-flight must not hand its reply to the next one.

    redis-py drops a connection whose command was cancelled, so the next
    command normally runs on a fresh one. Should a stale reply still arrive,
    the stored record repeats the start of its own token's digest, and a
    record whose check does not match the key that was asked for decodes as
    no session at all.
    """
    with fault_server() as server:
        asyncio.run(_cancel_mid_flight(server, through_auth))


async def _cancel_mid_flight(server: RedisServer, through_auth: bool) -> None:
    client = redis.asyncio.Redis(
        host=server.address[0],
        port=server.port,
        socket_timeout=5,
        single_connection_client=True,
    )
    store = AsyncSessionStore(client)

    def find(token: str) -> Coroutine[Any, Any, Session | None]:
        # A lazy lookup through the request's auth object runs in the caller's
        # task, so cancelling the caller cancels the GET in flight.
        if through_auth:
            return AsyncRequestAuth(store, token).lookup()
        return store.find_session(token)

    try:
        token_a, _ = await store.create_session("alice")
        token_b, session_b = await store.create_session("bob")
        admin_command(server, "CONFIG", "RESETSTAT")

        for _ in range(3):
            sleeper = threading.Thread(
                target=admin_command, args=(server, "DEBUG", "SLEEP", "0.3")
            )
            sleeper.start()
            await asyncio.sleep(0.05)
            lookup_a = asyncio.create_task(find(token_a))
            await asyncio.sleep(0.1)
            assert not lookup_a.done()
            lookup_a.cancel()
            with pytest.raises(asyncio.CancelledError):
                await lookup_a

            found = await find(token_b)

            assert found is None or found.user_id == "bob"
            assert found == session_b
            await asyncio.to_thread(sleeper.join, 10)

        # Each cancelled GET reached the server, so the cancellation really
        # happened after the command was sent.
        stats = admin_command(server, "INFO", "commandstats")
        assert stats["cmdstat_get"]["calls"] == 6
    finally:
        await client.aclose()


def test_asgi_many_tokens_each_see_own(
    redis_server: RedisServer, redis_url: str
) -> None:
    # redis-py's own pool raises at 100 connections instead of waiting, so
    # hundreds of concurrent lookups need the blocking pool of redis_from_url.
    def client() -> redis.asyncio.Redis:
        return redis_from_url(redis_url, timeout=10, asyncio=True, max_connections=32)

    stack = AsgiStack(client)
    try:
        tokens = {}
        for index in range(MANY_REQUESTS):
            token, session = stack.store_call("create_session", f"user-{index}")
            tokens[token] = (f"user-{index}", session.session_id)

        replies = stack.requests([(PRIVATE, token) for token in tokens])

        for token, reply in zip(tokens, replies, strict=True):
            assert reply.status == 200
            assert reply.json() == {
                "user": tokens[token][0],
                "session": tokens[token][1],
            }
    finally:
        stack.close()


def _get(base_url: str, token: str) -> tuple[int, dict[str, Any]]:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", PRIVATE, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_threaded_wsgi_server_each_sees_own(store: SessionStore) -> None:
    tokens = {}
    for index in range(MANY_REQUESTS):
        token, session = store.create_session(f"user-{index}")
        tokens[token] = {"user": f"user-{index}", "session": session.session_id}
    middleware = BearerMiddleware(WhoAmIApp(), store, required=True, rules=RULES)
    server = WsgiServerThread(middleware)
    try:
        with ThreadPoolExecutor(16) as executor:
            replies = list(
                executor.map(lambda token: _get(server.base_url, token), tokens)
            )
    finally:
        server.close()

    for token, (status, document) in zip(tokens, replies, strict=True):
        assert status == 200
        assert document == tokens[token]
