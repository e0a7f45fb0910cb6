"""Property tests over arbitrary Authorization header bytes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from bearer_mw import (
    AsyncBearerMiddleware,
    AsyncSessionStore,
    BearerMiddleware,
    SessionStore,
)
from bearer_mw.header import CredentialsStatus, parse_authorization, read_bearer_token
from tests.middleware_support import CountingClient, echo_asgi_app, echo_wsgi_app

# RFC 6750, section 2.1, written independently of the parser's own pattern.
B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")

# The middleware properties replace this marker with the token of a live
# session, so a malformed header around a real token is tried too.
TOKEN_MARKER = b"<token>"

# Values near the grammar find more edge cases than uniform random bytes.
NEAR_GRAMMAR = st.lists(
    st.sampled_from(
        [
            b"Bearer",
            b"bearer",
            b"Basic",
            b" ",
            b"  ",
            b"\t",
            b",",
            b"=",
            b"==",
            b"abc",
            b"Z9",
            b"-._~+/",
            b":",
            b'"',
            b"\x00",
            b"\r\n",
            b"\x7f",
            b"\xe9",
            b"\xff",
            TOKEN_MARKER,
        ]
    ),
    max_size=8,
).map(b"".join)
HEADER_BYTES = st.one_of(st.binary(max_size=64), NEAR_GRAMMAR)
STATUSES = {200, 400, 401}


@settings(max_examples=10_000, deadline=None)
@given(value=HEADER_BYTES)
def test_parse_never_raises(value: bytes) -> None:
    credentials = parse_authorization(value)

    if credentials.status is CredentialsStatus.BEARER:
        assert credentials.token is not None
        assert B64TOKEN.fullmatch(credentials.token)
        text = value.decode("latin-1").strip(" \t")
        assert text[:6].lower() == "bearer"
        assert text[6:].lstrip(" ") == credentials.token
    else:
        assert credentials.token is None
    assert read_bearer_token(value) == credentials.token


@settings(max_examples=1_000, deadline=None)
@given(token=st.from_regex(B64TOKEN, fullmatch=True), spaces=st.integers(1, 3))
def test_parse_accepts_every_b64token(token: str, spaces: int) -> None:
    value = "Bearer" + " " * spaces + token
    credentials = parse_authorization(value, max_length=len(value))

    assert credentials.status is CredentialsStatus.BEARER
    assert credentials.token == token


@pytest.fixture(scope="module")
def wsgi_middleware() -> Iterator[tuple[BearerMiddleware, CountingClient, bytes]]:
    client = fakeredis.FakeRedis()
    counting = CountingClient(client)
    token, _ = SessionStore(client).create_session("ada")
    middleware = BearerMiddleware(echo_wsgi_app, SessionStore(counting), required=True)
    yield middleware, counting, token.encode()
    client.close()


@settings(
    max_examples=1_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=HEADER_BYTES)
def test_wsgi_malformed_skips_redis(
    wsgi_middleware: tuple[BearerMiddleware, CountingClient, bytes], value: bytes
) -> None:
    middleware, counting, token = wsgi_middleware
    counting.commands.clear()
    value = value.replace(TOKEN_MARKER, token)
    environ = EnvironBuilder(path="/").get_environ()
    environ["HTTP_AUTHORIZATION"] = value.decode("latin-1")

    _, status, _ = run_wsgi_app(middleware, environ, buffered=True)

    code = int(status.split()[0])
    assert code in STATUSES
    check_redis_use(value, token, code, counting.commands)


def check_redis_use(value: bytes, token: bytes, code: int, commands: list[str]) -> None:
    """Check that Redis was asked only about a well-formed, live-shaped token."""
    credentials = parse_authorization(value)
    if credentials.status is not CredentialsStatus.BEARER:
        assert commands == []
        return
    if credentials.token == token.decode():
        assert code == 200
        assert commands == ["GET"]
    else:
        assert code == 401


class AsgiHarness:
    """One middleware and one event loop reused across examples."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = fakeredis.FakeServer()
        self.client = fakeredis.FakeAsyncRedis(server=self.server)
        self.counting = CountingClient(self.client)
        sessions = SessionStore(fakeredis.FakeRedis(server=self.server))
        self.token = sessions.create_session("ada")[0].encode()
        store = AsyncSessionStore(self.counting)
        self.middleware = AsyncBearerMiddleware(echo_asgi_app, store, required=True)

    def status_for(self, headers: list[tuple[bytes, bytes]]) -> int:
        return self.loop.run_until_complete(self._call(headers))

    async def _call(self, headers: list[tuple[bytes, bytes]]) -> int:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            sent.append(message)

        await self.middleware(scope, receive, send)
        assert sent[0]["type"] == "http.response.start"
        status: int = sent[0]["status"]
        return status

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def asgi_harness() -> Iterator[AsgiHarness]:
    harness = AsgiHarness()
    yield harness
    harness.close()


@settings(
    max_examples=1_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.lists(HEADER_BYTES, min_size=1, max_size=2))
def test_asgi_malformed_skips_redis(
    asgi_harness: AsgiHarness, values: list[bytes]
) -> None:
    asgi_harness.counting.commands.clear()
    headers = [(b"authorization", value) for value in values]

    code = asgi_harness.status_for(headers)

    assert code in STATUSES
    if len(values) > 1:
        assert code == 400
    single = len(values) == 1
    if (
        not single
        or parse_authorization(values[0]).status is not CredentialsStatus.BEARER
    ):
        assert asgi_harness.counting.commands == []
