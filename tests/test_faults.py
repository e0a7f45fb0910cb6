"""Both middlewares against a real Redis that is down, killed, hung or full.

Each test starts its own redis-server on a loopback port with an append-only
file, so sessions survive a kill and a restart, as on a production server with
persistence. The store's client has short socket timeouts and no retries of
its own, so every response during a fault must arrive within
``REQUEST_BOUND`` seconds.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio

from bearer_mw import SessionStore
from bearer_mw.client import redis_from_url
from tests.fault_support import (
    FAULT_TIMEOUT,
    OPTIONAL,
    PRIVATE,
    RENEW,
    REQUEST_BOUND,
    AsgiStack,
    Reply,
    WsgiStack,
    admin_command,
    build_stack,
    fault_server,
)
from tests.redis_servers import RedisServer

StackFactory = Callable[..., WsgiStack | AsgiStack]

OUTAGE_LOGGER = "bearer_mw.store"


@pytest.fixture
def server(redis_installed: None) -> Iterator[RedisServer]:
    with fault_server() as started:
        yield started


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_stack(kind: str, server: RedisServer) -> Iterator[StackFactory]:
    stacks: list[WsgiStack | AsgiStack] = []

    def make(**options: Any) -> WsgiStack | AsgiStack:
        stack = build_stack(kind, server, **options)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()


def create_token(server: RedisServer, user_id: str) -> str:
    """Create a session with a store of its own and return its token."""
    with server.client() as client:
        token, _ = SessionStore(client).create_session(user_id)
    return token


def assert_unavailable(reply: Reply) -> None:
    assert reply.status == 503, reply.body
    assert reply.headers.get("Retry-After", reply.headers.get("retry-after")) == "1"
    assert reply.elapsed < REQUEST_BOUND, f"took {reply.elapsed:.2f} s"
    assert "WWW-Authenticate" not in reply.headers
    assert "www-authenticate" not in reply.headers


def assert_served(reply: Reply, user_id: str) -> None:
    assert reply.status == 200, reply.body
    assert reply.user == user_id


def outage_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == OUTAGE_LOGGER and record.levelno == level
    ]


def test_redis_down_at_start_answers_503(
    server: RedisServer, make_stack: StackFactory
) -> None:
    token = create_token(server, "alice")
    server.stop()
    stack = make_stack()

    assert_unavailable(stack.request(PRIVATE, token))

    server.start()
    assert_served(stack.request(PRIVATE, token), "alice")


@pytest.mark.parametrize(
    ("anonymous", "expected_status"),
    [
        pytest.param(False, 503, id="default-503"),
        pytest.param(True, 200, id="anonymous-when-unavailable"),
    ],
)
def test_optional_route_while_redis_down(
    server: RedisServer, make_stack: StackFactory, anonymous: bool, expected_status: int
) -> None:
    token = create_token(server, "alice")
    stack = make_stack(anonymous_when_unavailable=anonymous)
    server.stop()

    optional = stack.request(OPTIONAL, token)
    private = stack.request(PRIVATE, token)

    assert optional.status == expected_status
    assert optional.elapsed < REQUEST_BOUND
    if anonymous:
        assert optional.json() == {"user": None, "session": None}
    else:
        assert_unavailable(optional)
    # A route that requires a session never degrades to anonymous.
    assert_unavailable(private)

    server.start()
    assert_served(stack.request(OPTIONAL, token), "alice")


@pytest.mark.parametrize("single_connection", [False, True], ids=["pool", "single"])
def test_restart_retries_on_fresh_connection(
    server: RedisServer,
    make_stack: StackFactory,
    caplog: pytest.LogCaptureFixture,
    single_connection: bool,
) -> None:
    token = create_token(server, "alice")
    stack = make_stack(client_options={"single_connection_client": single_connection})
    assert_served(stack.request(PRIVATE, token), "alice")

    # The client's connection now points at a process that no longer exists.
    # The first command on it fails with ConnectionError and the store sends
    # it once more on a new connection.
    server.restart()
    with caplog.at_level(logging.INFO, logger=OUTAGE_LOGGER):
        reply = stack.request(PRIVATE, token)

    assert_served(reply, "alice")
    assert outage_records(caplog, logging.WARNING) == []


def _client_pause(server: RedisServer) -> Callable[[], None]:
    admin_command(server, "CLIENT", "PAUSE", 1500, "ALL")

    def clear() -> None:
        admin_command(server, "CLIENT", "UNPAUSE")

    return clear


def _debug_sleep(server: RedisServer) -> Callable[[], None]:
    thread = threading.Thread(
        target=admin_command, args=(server, "DEBUG", "SLEEP", "1.5"), daemon=True
    )
    thread.start()
    # Let the server start its sleep before the request goes out.
    time.sleep(0.2)

    def clear() -> None:
        thread.join(10)

    return clear


def _sigstop(server: RedisServer) -> Callable[[], None]:
    server.pause()
    return server.resume


@pytest.mark.parametrize(
    "induce",
    [
        pytest.param(_client_pause, id="client-pause"),
        pytest.param(_debug_sleep, id="debug-sleep"),
        pytest.param(_sigstop, id="sigstop"),
    ],
)
def test_hung_redis_answers_503_within_timeout(
    server: RedisServer,
    make_stack: StackFactory,
    induce: Callable[[RedisServer], Callable[[], None]],
) -> None:
    token = create_token(server, "alice")
    stack = make_stack()
    assert_served(stack.request(PRIVATE, token), "alice")

    clear = induce(server)
    try:
        reply = stack.request(PRIVATE, token)
    finally:
        clear()

    assert_unavailable(reply)
    # The client waits one socket timeout for the reply, and a timeout is not
    # retried, so the 503 cannot arrive much sooner.
    assert reply.elapsed >= FAULT_TIMEOUT * 0.9
    assert_served(stack.request(PRIVATE, token), "alice")


def _fill_client_slots(server: RedisServer, limit: int) -> list[socket.socket]:
    """Open raw connections until Redis rejects one, and return the accepted ones."""
    accepted: list[socket.socket] = []
    for _ in range(limit + 2):
        connection = socket.create_connection(server.address, timeout=5)
        connection.sendall(b"PING\r\n")
        answer = connection.recv(64)
        if answer.startswith(b"+PONG"):
            accepted.append(connection)
            continue
        connection.close()
        assert b"max number of clients" in answer, answer
        return accepted
    raise AssertionError(f"Redis accepted more than {limit} clients")


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_maxclients_reached_answers_503(redis_installed: None, kind: str) -> None:
    limit = 4
    with fault_server("--maxclients", str(limit)) as server:
        token = create_token(server, "alice")
        stack = build_stack(kind, server)
        try:
            connections = _fill_client_slots(server, limit)
            try:
                reply = stack.request(PRIVATE, token)
            finally:
                for connection in connections:
                    connection.close()
            assert_unavailable(reply)
            # Redis frees a slot when it notices the closed socket.
            time.sleep(0.1)
            assert_served(stack.request(PRIVATE, token), "alice")
        finally:
            stack.close()


def test_full_memory_rejects_renewal_keeps_reads(
    server: RedisServer, make_stack: StackFactory
) -> None:
    token = create_token(server, "alice")
    stack = make_stack()
    admin_command(server, "CONFIG", "SET", "maxmemory", "1")
    try:
        read = stack.request(PRIVATE, token)
        renewal = stack.request(RENEW, token, method="POST")
    finally:
        admin_command(server, "CONFIG", "SET", "maxmemory", "0")

    # GET is allowed above maxmemory, a script that writes is not.
    assert_served(read, "alice")
    assert_unavailable(renewal)
    renewed = stack.request(RENEW, token, method="POST")
    assert renewed.status == 200
    assert_served(stack.request(PRIVATE, renewed.json()["access_token"]), "alice")


def test_kill_during_load_recovers(
    server: RedisServer, make_stack: StackFactory
) -> None:
    users = [f"user-{index}" for index in range(8)]
    tokens = {create_token(server, user): user for user in users}
    stack = make_stack()
    replies: list[tuple[str, Reply]] = []
    calls = [(PRIVATE, token) for token in tokens]

    def crash_and_restart() -> None:
        time.sleep(0.3)
        server.kill()
        time.sleep(0.6)
        server.start()

    fault = threading.Thread(target=crash_and_restart, daemon=True)
    fault.start()
    deadline = time.monotonic() + 5.0
    while fault.is_alive() and time.monotonic() < deadline:
        batch = stack.requests(calls)
        replies.extend(zip((token for _, token in calls), batch, strict=True))
    fault.join(10)
    after = stack.requests(calls)

    statuses = {reply.status for _, reply in replies}
    assert statuses <= {200, 503}
    assert 503 in statuses, "the kill was never observed"
    for token, reply in replies:
        if reply.status == 200:
            assert reply.user == tokens[token]
        else:
            assert_unavailable(reply)
    for (_, token), reply in zip(calls, after, strict=True):
        assert_served(reply, tokens[token])


def test_outage_logged_once_then_recovery(
    server: RedisServer, make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    token = create_token(server, "alice")
    stack = make_stack()
    assert_served(stack.request(PRIVATE, token), "alice")
    server.stop()
    failed_requests = 5

    with caplog.at_level(logging.INFO, logger=OUTAGE_LOGGER):
        for _ in range(failed_requests):
            assert_unavailable(stack.request(PRIVATE, token))
        warnings = outage_records(caplog, logging.WARNING)
        assert len(warnings) == 1
        assert "ConnectionError" in warnings[0]
        assert "find_session" in warnings[0]
        assert outage_records(caplog, logging.INFO) == []

        server.start()
        assert_served(stack.request(PRIVATE, token), "alice")
        assert_served(stack.request(PRIVATE, token), "alice")

    recoveries = outage_records(caplog, logging.INFO)
    assert len(recoveries) == 1
    assert f"after {failed_requests} failed calls" in recoveries[0]
    assert len(outage_records(caplog, logging.WARNING)) == 1


def test_second_outage_logged_again(
    server: RedisServer, make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    token = create_token(server, "alice")
    stack = make_stack()

    with caplog.at_level(logging.INFO, logger=OUTAGE_LOGGER):
        for _ in range(2):
            server.stop()
            assert_unavailable(stack.request(PRIVATE, token))
            server.start()
            assert_served(stack.request(PRIVATE, token), "alice")

    assert len(outage_records(caplog, logging.WARNING)) == 2
    assert len(outage_records(caplog, logging.INFO)) == 2


@pytest.mark.parametrize(
    ("blocking", "batch_reads", "expected"),
    [
        pytest.param(False, False, {200, 503}, id="default-pool-raises"),
        pytest.param(True, False, {200}, id="blocking-pool-waits"),
        pytest.param(True, True, {200}, id="blocking-pool-batched-reads"),
    ],
)
def test_exhausted_client_pool(
    server: RedisServer, blocking: bool, batch_reads: bool, expected: set[int]
) -> None:
    tokens = [create_token(server, "alice") for _ in range(40)]

    def client() -> redis.asyncio.Redis:
        if blocking:
            return redis_from_url(
                server.url, timeout=5, asyncio=True, max_connections=2
            )
        # redis-py's own pool raises MaxConnectionsError instead of waiting.
        pool = redis.asyncio.ConnectionPool.from_url(server.url, max_connections=2)
        return redis.asyncio.Redis(connection_pool=pool)

    stack = AsgiStack(client, store_options={"batch_reads": batch_reads})
    try:
        replies = stack.requests([(PRIVATE, token) for token in tokens])
    finally:
        stack.close()

    assert {reply.status for reply in replies} == expected
    for reply in replies:
        if reply.status == 200:
            assert reply.user == "alice"
        else:
            assert_unavailable(reply)
