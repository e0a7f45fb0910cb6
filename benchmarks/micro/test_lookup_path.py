"""The steps of one validated request's lookup, each on its own, without I/O.

The store runs over a client that returns a stored record at once. These
figures are therefore the CPU cost of bearer_mw's own work: deriving the keys
from the token, decoding the record, and both with the driver around them.
"""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bearer_mw import SessionStore
from bearer_mw.records import SessionKeys, decode_live
from bearer_mw.session import system_clock
from bearer_mw.tokens import token_digest


class CannedClient:
    """A client that returns one stored reply for every command."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def execute_command(self, *args: Any, **options: Any) -> bytes:
        return self.reply


@pytest.fixture(scope="module")
def issued() -> tuple[str, SessionKeys, bytes]:
    """Return a token, its keys and its stored record, from a real create."""
    client = fakeredis.FakeRedis()
    store = SessionStore(client)
    token, _ = store.create_session("user-000001", {"scopes": ["read"]})
    keys = store._operations.keys_for(token)
    assert keys is not None
    record = client.get(keys.session)
    assert isinstance(record, bytes)
    return token, keys, record


def test_token_digest(
    benchmark: BenchmarkFixture, issued: tuple[str, SessionKeys, bytes]
) -> None:
    token, keys, _ = issued

    assert benchmark(token_digest, token) == keys.digest


def test_lookup_derives_keys(
    benchmark: BenchmarkFixture, issued: tuple[str, SessionKeys, bytes]
) -> None:
    token, keys, record = issued
    operations = SessionStore(CannedClient(record))._operations

    prepared = benchmark(operations.lookup_key, token)

    assert prepared == (keys.digest, keys.session)


def test_decode_live(
    benchmark: BenchmarkFixture, issued: tuple[str, SessionKeys, bytes]
) -> None:
    _, keys, record = issued
    now = system_clock()

    session = benchmark(decode_live, record, keys.digest, now)

    assert session is not None
    assert session.user_id == "user-000001"


def test_find_session_without_io(
    benchmark: BenchmarkFixture, issued: tuple[str, SessionKeys, bytes]
) -> None:
    token, _, record = issued
    store = SessionStore(CannedClient(record))

    session = benchmark(store.find_session, token)

    assert session is not None
    assert session.state == "active"
