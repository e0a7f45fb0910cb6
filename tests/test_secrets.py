"""Tokens never leak into logs, exceptions, reprs or Redis.

Every token a test issues or sends is a canary. One test per middleware drives
canaries through each path with logging captured at DEBUG: valid, renewed,
idle, dead, logged out, unknown, malformed, a Redis error reply and a stopped
server. It then searches every log record, formatted exception, repr and Redis
key and value for them. The user tag before the dot is not secret by design,
so the search looks for the whole token and for its secret part.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from bearer_mw import BearerMWError, InvalidSessionError, StoreUnavailableError
from bearer_mw.records import KeySpace
from bearer_mw.tokens import new_token, user_tag
from tests.fault_support import (
    LOGOUT,
    OPTIONAL,
    PRIVATE,
    RENEW,
    AsgiStack,
    Clock,
    WsgiStack,
    build_stack,
    fault_server,
)
from tests.redis_servers import RedisServer

ACTIVE_SECONDS = 60
IDLE_SECONDS = 60
#: Not a token this library issues: the grammar accepts it, the store does not.
MALFORMED_CANARY = "CANARYnotissuedbyusCANARY"
MALFORMED_HEADERS = [
    f"Bearer {MALFORMED_CANARY} extra",
    f"Bearer {MALFORMED_CANARY},Bearer other",
    f"Bearer\t{MALFORMED_CANARY}",
    f"Bearer {MALFORMED_CANARY}!!",
    f"Bearer {MALFORMED_CANARY}" + "a" * 2000,
]
STORE_METHODS = [
    "find_session",
    "get_session",
    "validate_session",
    "renew_session",
    "invalidate_session",
]


class Evidence:
    """Everything the library produced that must not contain a token."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.secrets: set[str] = {MALFORMED_CANARY}

    def canary(self, token: str) -> str:
        """Register ``token`` as a canary and return it."""
        self.secrets.add(token)
        self.secrets.add(token.split(".", 1)[1])
        return token

    def add(self, where: str, value: object) -> None:
        """Keep the repr of ``value`` to search later."""
        self.texts.append((where, repr(value)))

    def add_exception(self, where: str, error: BaseException) -> None:
        """Keep the message, repr and formatted traceback of ``error``."""
        self.texts.append((where, str(error)))
        self.texts.append((where, repr(error)))
        self.texts.append((where, "".join(traceback.format_exception(error))))

    def leaks(self) -> list[str]:
        """List every place that contains a canary."""
        return [
            f"{where}: {text[:200]!r}"
            for where, text in self.texts
            for secret in self.secrets
            if secret in text
        ]


def call_store(
    stack: WsgiStack | AsgiStack, evidence: Evidence, method: str, token: str
) -> Any:
    """Call a store method, keeping its result or its exception as evidence."""
    try:
        result = stack.store_call(method, token)
    except BearerMWError as error:
        evidence.add_exception(f"{method} raised", error)
        return None
    if isinstance(result, tuple):
        # renew_session returns the successor on purpose; keep the session.
        evidence.canary(result[0])
        result = result[1]
    evidence.add(f"{method} returned", result)
    return result


@pytest.fixture
def server(redis_installed: None) -> Iterator[RedisServer]:
    with fault_server() as started:
        yield started


def scan_redis(server: RedisServer, evidence: Evidence) -> int:
    """Add every key and value on ``server`` to the evidence; return the count."""
    count = 0
    with server.client(decode_responses=True) as client:
        for key in client.scan_iter():
            count += 1
            kind = client.type(key)
            if kind == "string":
                value: object = client.get(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                value = client.dump(key)
            evidence.texts.append(("redis key", key))
            evidence.texts.append((f"redis value of {key}", repr(value)))
    return count


def drive_every_path(
    stack: WsgiStack | AsgiStack,
    server: RedisServer,
    clock: Clock,
    evidence: Evidence,
) -> None:
    def issue(user_id: str) -> str:
        token, session = stack.store_call("create_session", user_id, {"plan": "x"})
        evidence.add("create_session returned", session)
        return evidence.canary(token)

    # Valid, renewed, replayed renewal and logout.
    valid = issue("valid")
    assert stack.request(PRIVATE, valid).status == 200
    assert stack.request(OPTIONAL, valid).status == 200
    renewed = stack.request(RENEW, valid, method="POST")
    assert renewed.status == 200
    successor = evidence.canary(renewed.json()["access_token"])
    assert stack.request(RENEW, valid, method="POST").status == 200
    assert stack.request(LOGOUT, successor).status == 200
    assert stack.request(PRIVATE, successor).status == 401
    for method in STORE_METHODS:
        call_store(stack, evidence, method, issue("direct"))

    # Unknown and malformed tokens.
    unknown = evidence.canary(new_token(user_tag("unknown")))
    assert stack.request(PRIVATE, unknown).status == 401
    assert stack.request(PRIVATE, MALFORMED_CANARY).status == 401
    for method in STORE_METHODS:
        call_store(stack, evidence, method, unknown)
        call_store(stack, evidence, method, MALFORMED_CANARY)
    for header in MALFORMED_HEADERS:
        reply = stack.request(PRIVATE, None, header=header)
        assert reply.status == 400
        evidence.texts.append(("400 response", repr(reply)))

    # Idle, then dead.
    idle = issue("idle")
    dead = issue("dead")
    clock.offset = (ACTIVE_SECONDS + 1) * 1000
    assert stack.request(PRIVATE, idle).status == 401
    assert stack.request(RENEW, idle, method="POST").status == 200
    clock.offset = (ACTIVE_SECONDS + IDLE_SECONDS + 1) * 1000
    assert stack.request(PRIVATE, dead).status == 401
    assert stack.request(RENEW, dead, method="POST").status == 401
    for method in STORE_METHODS:
        call_store(stack, evidence, method, dead)
    clock.offset = 0

    # Redis replies with an error: the session key holds the wrong type.
    wrong_type = issue("wrong-type")
    key = KeySpace().for_token(wrong_type).session
    with server.client() as client:
        assert client.delete(key) == 1
        client.rpush(key, "not a session")
    assert stack.request(PRIVATE, wrong_type).status == 503
    assert stack.request(RENEW, wrong_type, method="POST").status == 503
    for method in STORE_METHODS:
        call_store(stack, evidence, method, wrong_type)

    # Redis is down.
    down = issue("down")
    server.stop()
    assert stack.request(PRIVATE, down).status == 503
    assert stack.request(RENEW, down, method="POST").status == 503
    assert stack.request(LOGOUT, down).status == 503
    for method in STORE_METHODS:
        call_store(stack, evidence, method, down)
    server.start()


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_tokens_never_leak(
    server: RedisServer, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    clock = Clock()
    stack = build_stack(
        kind,
        server,
        store_options={
            "clock": clock,
            "active_period": ACTIVE_SECONDS,
            "idle_period": IDLE_SECONDS,
        },
    )
    evidence = Evidence()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="bearer_mw")
    try:
        drive_every_path(stack, server, clock, evidence)
        evidence.add("store", stack.store)
        evidence.add("middleware config", stack.middleware.config)
        for index, added in enumerate(stack.app.seen):
            for key, value in added.items():
                evidence.add(f"request {index} {key}", value)
    finally:
        stack.close()

    formatter = logging.Formatter()
    for record in caplog.records:
        evidence.texts.append((f"log {record.name}", record.getMessage()))
        evidence.texts.append((f"log {record.name} args", repr(record.args)))
        if record.exc_info:
            text = formatter.formatException(record.exc_info)
            evidence.texts.append((f"log {record.name} exception", text))
    assert scan_redis(server, evidence) > 0
    assert any(name == "bearer_mw.store" for name in (r.name for r in caplog.records))
    assert len(evidence.secrets) > 10

    assert evidence.leaks() == []


def test_leak_search_finds_planted_token() -> None:
    evidence = Evidence()
    token = evidence.canary(new_token(user_tag("alice")))
    secret = token.split(".", 1)[1]

    evidence.add_exception("planted", InvalidSessionError(f"bad {secret}"))
    evidence.add("clean", StoreUnavailableError("down", operation="find_session"))

    leaks = evidence.leaks()
    assert len(leaks) == 3
    assert all(leak.startswith("planted") for leak in leaks)
