"""One suite for SessionStore and AsyncSessionStore, over fakeredis and real Redis.

Each test runs once per backend in ``ALL_BACKENDS`` unless it narrows the list.
Tests of command counts and concurrency run on real Redis only, and tests that
do not depend on the client's reply types run on one client per server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import fakeredis
import pytest

from bearer_mw import (
    AsyncSessionStore,
    ConfigurationError,
    InvalidSessionError,
    SessionStore,
    StoreUnavailableError,
)
from bearer_mw.records import encode_record
from bearer_mw.tokens import (
    CHECK_LENGTH,
    USER_TAG_LENGTH,
    is_token_shaped,
    new_token,
    token_digest,
    user_tag,
)
from tests.redis_servers import free_port
from tests.store_support import (
    ALL_BACKENDS,
    BASIC_BACKENDS,
    DRIVER_BACKENDS,
    REAL_BACKENDS,
    StoreDriver,
    StoreHarness,
    measure_traffic,
    open_harness,
)

ACTIVE_MS = 60_000
IDLE_MS = 600_000
GRACE_MS = 5_000

SECRET_LENGTH = len(new_token(user_tag("sample")).split(".")[1])
#: A token of the issued shape that no store ever issued.
UNKNOWN_TOKEN = "A" * USER_TAG_LENGTH + "." + "B" * SECRET_LENGTH


@pytest.fixture(params=ALL_BACKENDS)
def harness(request: pytest.FixtureRequest) -> Iterator[StoreHarness]:
    with open_harness(request) as opened:
        yield opened


@pytest.fixture
def store(harness: StoreHarness) -> StoreDriver:
    """A store with one-minute active, ten-minute idle and five-second grace."""
    return harness.open_store(
        active_period=timedelta(milliseconds=ACTIVE_MS),
        idle_period=timedelta(milliseconds=IDLE_MS),
        renewal_grace=timedelta(milliseconds=GRACE_MS),
    )


def pexpiretime(harness: StoreHarness, key: str) -> int:
    return harness.expire_time(key)


def index_digests(harness: StoreHarness, index: str) -> dict[str, int]:
    members = harness.members(index)
    return {member.decode(): int(score) for member, score in members.items()}


# Creating and reading


def test_create_session_returns_active_session(
    harness: StoreHarness, store: StoreDriver
) -> None:
    now = harness.clock.now

    token, session = store.create_session("alice", {"role": "admin"})

    assert is_token_shaped(token)
    assert session.session_id == token_digest(token)
    assert session.user_id == "alice"
    assert dict(session.attributes) == {"role": "admin"}
    assert session.state == "active"
    assert session.created == now
    assert session.active_expires == now + ACTIVE_MS
    assert session.idle_expires == now + ACTIVE_MS + IDLE_MS


def test_create_session_without_attributes(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")

    session = store.get_session(token)

    assert dict(session.attributes) == {}


def test_create_session_issues_distinct_tokens(store: StoreDriver) -> None:
    tokens = {store.create_session("alice")[0] for _ in range(20)}

    assert len(tokens) == 20


def test_get_session_returns_stored_session(store: StoreDriver) -> None:
    token, created = store.create_session("alice", {"n": 1, "list": [1, "two"]})

    found = store.get_session(token)

    assert found == created


def test_get_session_returns_idle_session(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS)

    session = store.get_session(token)

    assert session.state == "idle"


def test_get_session_rejects_dead_session(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS + IDLE_MS)

    with pytest.raises(InvalidSessionError):
        store.get_session(token)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-token", id="short"),
        pytest.param(UNKNOWN_TOKEN, id="unknown"),
        pytest.param(UNKNOWN_TOKEN.replace(".", ":"), id="wrong-separator"),
        pytest.param(UNKNOWN_TOKEN + "=", id="padded"),
        pytest.param(UNKNOWN_TOKEN[:-1] + "+", id="outside-base64url"),
        pytest.param(UNKNOWN_TOKEN[1:], id="short-tag"),
        pytest.param("A" * 2000, id="oversized"),
    ],
)
def test_get_session_rejects_unknown_or_malformed(
    store: StoreDriver, token: str
) -> None:
    with pytest.raises(InvalidSessionError):
        store.get_session(token)


def test_get_session_error_hides_token(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    store.invalidate_session(token)

    with pytest.raises(InvalidSessionError) as raised:
        store.get_session(token)

    assert token not in str(raised.value)
    assert token not in repr(raised.value)


def test_reads_leave_expiry_unchanged(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    keys = store.keys_for(token)
    session_expiry = pexpiretime(harness, keys.session)
    index_expiry = pexpiretime(harness, keys.index)
    value = harness.value(keys.session)

    for advance in (0, ACTIVE_MS // 2, ACTIVE_MS):
        harness.clock.advance(advance)
        store.get_session(token)
        store.find_session(token)
        store.validate_session(token)
        store.get_user_sessions("alice")

    assert pexpiretime(harness, keys.session) == session_expiry
    assert pexpiretime(harness, keys.index) == index_expiry
    assert harness.value(keys.session) == value


def test_find_session_returns_none_for_unknown(store: StoreDriver) -> None:
    assert store.find_session(UNKNOWN_TOKEN) is None


def test_validate_session_returns_active_session(store: StoreDriver) -> None:
    token, created = store.create_session("alice")

    assert store.validate_session(token) == created


def test_validate_session_returns_none_for_idle(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS)

    assert store.validate_session(token) is None
    assert store.find_session(token) is not None


def test_validate_session_returns_none_for_dead(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS + IDLE_MS)

    assert store.validate_session(token) is None


def test_validate_session_returns_none_for_malformed(store: StoreDriver) -> None:
    assert store.validate_session("Bearer abc") is None


# Renewal


def test_renew_session_keeps_user_and_attributes(store: StoreDriver) -> None:
    token, original = store.create_session("alice", {"scopes": ["read", "write"]})

    renewed = store.renew_session(token)

    assert renewed is not None
    successor, session = renewed
    assert successor != token
    assert is_token_shaped(successor)
    assert session.user_id == "alice"
    assert dict(session.attributes) == {"scopes": ["read", "write"]}
    assert session.created == original.created
    assert session.session_id == token_digest(successor)


def test_renew_session_gives_fresh_periods(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS // 2)
    now = harness.clock.now

    renewed = store.renew_session(token)

    assert renewed is not None
    successor, session = renewed
    assert session.state == "active"
    assert session.active_expires == now + ACTIVE_MS
    assert session.idle_expires == now + ACTIVE_MS + IDLE_MS
    assert store.validate_session(successor) == session


def test_renew_session_old_token_stops_validating(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")

    assert store.renew_session(token) is not None

    assert store.validate_session(token) is None
    assert store.find_session(token) is None
    with pytest.raises(InvalidSessionError):
        store.get_session(token)


def test_renew_session_of_idle_session(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS + IDLE_MS - 1)

    renewed = store.renew_session(token)

    assert renewed is not None
    successor, session = renewed
    assert session.state == "active"
    assert store.validate_session(successor) is not None


def test_renew_session_of_dead_session(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS + IDLE_MS)

    assert store.renew_session(token) is None
    assert store.get_user_sessions("alice") == []


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(UNKNOWN_TOKEN, id="unknown"),
        pytest.param("garbage", id="malformed"),
    ],
)
def test_renew_session_of_unknown_token(store: StoreDriver, token: str) -> None:
    assert store.renew_session(token) is None


def test_renew_session_of_invalidated_session(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    store.invalidate_session(token)

    assert store.renew_session(token) is None


def test_renew_session_replaces_index_member(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, _ = store.create_session("alice")
    for _ in range(10):
        renewed = store.renew_session(token)
        assert renewed is not None
        token = renewed[0]

    keys = store.keys_for(token)
    assert list(index_digests(harness, keys.index)) == [keys.digest]
    assert [s.session_id for s in store.get_user_sessions("alice")] == [keys.digest]


def test_renew_replay_within_grace(harness: StoreHarness, store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    first = store.renew_session(token)
    assert first is not None

    harness.clock.advance(GRACE_MS - 1)
    again = store.renew_session(token)

    assert again is not None
    assert again[0] == first[0]
    assert again[1] == first[1]
    assert len(store.get_user_sessions("alice")) == 1


def test_renew_replay_at_grace_end(harness: StoreHarness, store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    first = store.renew_session(token)
    assert first is not None

    harness.clock.advance(GRACE_MS)

    assert store.renew_session(token) is None
    assert store.validate_session(first[0]) is not None


def test_renew_replay_without_grace(harness: StoreHarness) -> None:
    store = harness.open_store(renewal_grace=0)
    token, _ = store.create_session("alice")
    first = store.renew_session(token)
    assert first is not None

    assert store.renew_session(token) is None
    assert harness.raw.exists(store.keys_for(token).session) == 0
    assert store.validate_session(first[0]) is not None


def test_renew_replay_after_successor_invalidated(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    first = store.renew_session(token)
    assert first is not None

    assert store.invalidate_session(first[0]) is True

    assert store.renew_session(token) is None


def test_invalidate_during_grace_ends_successor(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    first = store.renew_session(token)
    assert first is not None

    assert store.invalidate_session(token) is True

    assert store.validate_session(first[0]) is None
    assert store.renew_session(token) is None
    assert store.get_user_sessions("alice") == []


def test_invalidate_follows_successor_chain(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    first = store.renew_session(token)
    assert first is not None
    second = store.renew_session(first[0])
    assert second is not None

    assert store.invalidate_session(token) is True

    assert store.validate_session(second[0]) is None
    assert store.get_user_sessions("alice") == []


def test_invalidate_user_ends_pending_successors(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    first = store.renew_session(token)
    assert first is not None

    assert store.invalidate_user_sessions("alice") == 1

    assert store.validate_session(first[0]) is None
    assert store.renew_session(token) is None
    assert store.renew_session(first[0]) is None


@pytest.mark.parametrize("harness", REAL_BACKENDS, indirect=True)
def test_renew_concurrently_yields_one_successor(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")

    results = store.renew_concurrently(token, callers=8)

    successors = {result[0] for result in results if result is not None}
    assert None not in results
    assert len(successors) == 1
    successor = successors.pop()
    assert store.validate_session(successor) is not None
    assert store.validate_session(token) is None
    assert len(store.get_user_sessions("alice")) == 1


@pytest.mark.parametrize("harness", REAL_BACKENDS, indirect=True)
def test_renew_concurrently_without_grace(
    harness: StoreHarness,
) -> None:
    store = harness.open_store(renewal_grace=0)
    token, _ = store.create_session("alice")

    results = store.renew_concurrently(token, callers=8)

    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert store.validate_session(winners[0][0]) is not None
    assert len(store.get_user_sessions("alice")) == 1


# Invalidation and listing


def test_invalidate_session_reports_existence(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")

    assert store.invalidate_session(token) is True
    assert store.invalidate_session(token) is False
    assert store.validate_session(token) is None


def test_invalidate_session_of_malformed_token(store: StoreDriver) -> None:
    assert store.invalidate_session("not a token") is False


def test_invalidate_session_leaves_other_sessions(store: StoreDriver) -> None:
    token, _ = store.create_session("alice")
    other, other_session = store.create_session("alice")

    store.invalidate_session(token)

    assert store.get_user_sessions("alice") == [other_session]
    assert store.validate_session(other) == other_session


def test_invalidate_user_spares_other_users(store: StoreDriver) -> None:
    tokens = [store.create_session("alice")[0] for _ in range(3)]
    bob, _ = store.create_session("bob")

    assert store.invalidate_user_sessions("alice") == 3

    for token in tokens:
        assert store.validate_session(token) is None
    assert store.get_user_sessions("alice") == []
    assert store.validate_session(bob) is not None


def test_invalidate_user_sessions_of_unknown_user(store: StoreDriver) -> None:
    assert store.invalidate_user_sessions("nobody") == 0


def test_invalidate_user_counts_live_sessions(
    harness: StoreHarness, store: StoreDriver
) -> None:
    old, _ = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS + IDLE_MS)
    live, _ = store.create_session("alice")

    assert store.invalidate_user_sessions("alice") == 1

    assert store.find_session(old) is None
    assert store.find_session(live) is None


def test_get_user_sessions_lists_oldest_first(
    harness: StoreHarness, store: StoreDriver
) -> None:
    created = []
    for _ in range(3):
        created.append(store.create_session("alice")[1])
        harness.clock.advance(1_000)

    assert store.get_user_sessions("alice") == created


def test_get_user_sessions_skips_dead(
    harness: StoreHarness, store: StoreDriver
) -> None:
    store.create_session("alice")
    harness.clock.advance(IDLE_MS)
    _, idle = store.create_session("alice")
    harness.clock.advance(ACTIVE_MS)

    sessions = store.get_user_sessions("alice")

    assert [s.session_id for s in sessions] == [idle.session_id]
    assert sessions[0].state == "idle"


def test_get_user_sessions_of_unknown_user(store: StoreDriver) -> None:
    assert store.get_user_sessions("nobody") == []


# What Redis holds


def test_redis_never_contains_token(harness: StoreHarness, store: StoreDriver) -> None:
    tokens = []
    token, _ = store.create_session("alice", {"k": "v"})
    tokens.append(token)
    renewed = store.renew_session(token)
    assert renewed is not None
    tokens.append(renewed[0])
    assert store.renew_session(token) is not None
    tokens.append(store.create_session("bob")[0])
    store.validate_session(tokens[-1])

    stored: list[bytes] = []
    for key in harness.all_keys():
        stored.append(key)
        kind = harness.raw.type(key)
        if kind == b"string":
            stored.append(harness.value(key))
        elif kind == b"zset":
            stored.extend(harness.members(key))
        else:
            pytest.fail(f"unexpected key type {kind!r} for {key!r}")

    assert len(stored) > len(tokens)
    for secret in tokens:
        for text in (secret, secret.split(".")[1]):
            assert not any(text.encode() in item for item in stored)


@pytest.mark.parametrize("harness", BASIC_BACKENDS, indirect=True)
def test_session_key_expires_at_idle_expiry(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token, session = store.create_session("alice")
    keys = store.keys_for(token)

    assert pexpiretime(harness, keys.session) == session.idle_expires
    assert index_digests(harness, keys.index) == {
        session.session_id: session.idle_expires
    }

    harness.clock.advance(1_000)
    renewed = store.renew_session(token)
    assert renewed is not None
    successor, new_session = renewed

    assert pexpiretime(harness, store.keys_for(successor).session) == (
        new_session.idle_expires
    )
    assert pexpiretime(harness, keys.session) == harness.clock.now + GRACE_MS


@pytest.mark.parametrize("harness", BASIC_BACKENDS, indirect=True)
def test_index_expires_with_longest_member(
    harness: StoreHarness, store: StoreDriver
) -> None:
    first, _ = store.create_session("alice")
    harness.clock.advance(5_000)
    _, longest = store.create_session("alice")
    index = store.keys_for(first).index

    assert pexpiretime(harness, index) == longest.idle_expires

    harness.clock.advance(5_000)
    renewed = store.renew_session(first)
    assert renewed is not None

    assert pexpiretime(harness, index) == renewed[1].idle_expires


@pytest.mark.parametrize("harness", BASIC_BACKENDS, indirect=True)
def test_index_prunes_dead_members(harness: StoreHarness) -> None:
    store = harness.open_store(active_period=1, idle_period=1)
    tokens = [store.create_session("alice")[0] for _ in range(50)]
    index = store.keys_for(tokens[0]).index
    assert harness.raw.zcard(index) == 50

    harness.clock.advance(2_000)
    token, _ = store.create_session("alice")

    assert harness.raw.zcard(index) == 1
    assert list(index_digests(harness, index)) == [token_digest(token)]


def test_copied_record_is_rejected(harness: StoreHarness, store: StoreDriver) -> None:
    victim, _ = store.create_session("alice", {"role": "admin"})
    other, _ = store.create_session("mallory")
    victim_key = store.keys_for(victim).session
    other_key = store.keys_for(other).session

    harness.raw.set(other_key, harness.value(victim_key), keepttl=True)

    assert store.validate_session(other) is None
    assert store.find_session(other) is None
    assert store.renew_session(other) is None
    assert store.validate_session(victim) is not None


def test_found_rejects_other_tokens_record() -> None:
    operations = SessionStore(fakeredis.FakeRedis())._operations
    now = operations.clock()
    ada = operations.lookup_key(new_token(user_tag("ada")))
    bob = operations.lookup_key(new_token(user_tag("bob")))
    assert ada is not None
    assert bob is not None
    ada_digest, bob_digest = ada[0], bob[0]
    ada_record = encode_record(
        ada_digest[:CHECK_LENGTH], now, now + ACTIVE_MS, now + IDLE_MS, '["ada",{}]'
    )

    own = operations.found(ada_digest, ada_record)

    assert own is not None
    assert own.session_id == ada_digest
    assert own.user_id == "ada"
    # A reply that belongs to another key, as a connection out of step returns.
    assert operations.found(bob_digest, ada_record) is None


def test_copied_renewed_record_is_rejected(
    harness: StoreHarness, store: StoreDriver
) -> None:
    victim, _ = store.create_session("alice")
    other, _ = store.create_session("mallory")
    assert store.renew_session(victim) is not None
    victim_key = store.keys_for(victim).session
    other_key = store.keys_for(other).session

    harness.raw.set(other_key, harness.value(victim_key), keepttl=True)

    assert store.renew_session(other) is None


USER_IDS = [
    pytest.param("alice:1", id="colon"),
    pytest.param("{alice}", id="braces"),
    pytest.param("}{", id="reversed-braces"),
    pytest.param("alice smith", id="space"),
    pytest.param("alice\nsmith", id="newline"),
    pytest.param("alice|1|2", id="pipe"),
    pytest.param('"alice"\\', id="quote-backslash"),
    pytest.param("Zoë 東京 🙂", id="non-ascii"),
    pytest.param("x" * 10_000, id="long"),
    pytest.param("", id="empty"),
    pytest.param("\x00", id="nul"),
]


@pytest.mark.parametrize("user_id", USER_IDS)
def test_user_id_round_trips(store: StoreDriver, user_id: str) -> None:
    token, _ = store.create_session(user_id, {"who": user_id})
    renewed = store.renew_session(token)
    assert renewed is not None

    session = store.validate_session(renewed[0])

    assert session is not None
    assert session.user_id == user_id
    assert session.attributes["who"] == user_id
    assert [s.user_id for s in store.get_user_sessions(user_id)] == [user_id]
    assert store.invalidate_user_sessions(user_id) == 1


def test_user_ids_do_not_collide(store: StoreDriver) -> None:
    user_ids = [str(param.values[0]) for param in USER_IDS]
    user_ids += ["alice", "alice ", "Alice", "alice:", "{alice}x"]
    tokens = {user_id: store.create_session(user_id)[0] for user_id in user_ids}

    for user_id, token in tokens.items():
        sessions = store.get_user_sessions(user_id)
        assert [s.session_id for s in sessions] == [token_digest(token)]

    assert store.invalidate_user_sessions("alice") == 1
    for user_id, token in tokens.items():
        expected_alive = user_id != "alice"
        assert (store.validate_session(token) is not None) is expected_alive


def test_attributes_round_trip(store: StoreDriver) -> None:
    attributes: dict[str, Any] = {
        "scopes": "read write",
        "nested": {"list": [1, 2.5, None, True], "text": "ünï|cödé\n"},
        "big": 10**30,
    }
    token, _ = store.create_session("alice", attributes)

    session = store.get_session(token)

    assert dict(session.attributes) == attributes


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param({"value": object()}, id="object"),
        pytest.param({"value": {1, 2}}, id="set"),
        pytest.param({"value": b"bytes"}, id="bytes"),
        pytest.param({"value": float("nan")}, id="nan"),
        pytest.param({"value": float("inf")}, id="infinity"),
        pytest.param({("a", "b"): 1}, id="tuple-key"),
        pytest.param(["not", "a", "mapping"], id="list"),
    ],
)
@pytest.mark.parametrize("harness", DRIVER_BACKENDS, indirect=True)
def test_create_rejects_unserialisable_attributes(
    harness: StoreHarness, store: StoreDriver, attributes: Any
) -> None:
    with pytest.raises(ConfigurationError):
        store.create_session("alice", attributes)

    assert harness.all_keys() == []


@pytest.mark.parametrize(
    ("user_id", "attributes"),
    [
        pytest.param("\ud800", None, id="user-id"),
        pytest.param("alice", {"value": "\udfff"}, id="attribute"),
    ],
)
@pytest.mark.parametrize("harness", DRIVER_BACKENDS, indirect=True)
def test_create_session_rejects_lone_surrogate(
    harness: StoreHarness,
    store: StoreDriver,
    user_id: str,
    attributes: dict[str, Any] | None,
) -> None:
    with pytest.raises(ConfigurationError):
        store.create_session(user_id, attributes)

    assert harness.all_keys() == []


@pytest.mark.parametrize("user_id", [None, 42, b"alice"])
@pytest.mark.parametrize("harness", DRIVER_BACKENDS, indirect=True)
def test_create_session_rejects_non_str_user_id(
    store: StoreDriver, user_id: Any
) -> None:
    with pytest.raises(ConfigurationError):
        store.create_session(user_id)


def test_key_prefix_names_every_key(harness: StoreHarness) -> None:
    store = harness.open_store(key_prefix="app:sessions:")
    token, _ = store.create_session("alice")
    store.renew_session(token)

    keys = harness.all_keys()

    assert len(keys) == 3
    assert all(key.startswith(b"app:sessions:") for key in keys)


def test_key_prefixes_keep_stores_apart(harness: StoreHarness) -> None:
    first = harness.open_store(key_prefix="one:")
    second = harness.open_store(key_prefix="two:")
    token, _ = first.create_session("alice")

    assert second.validate_session(token) is None
    assert second.get_user_sessions("alice") == []
    assert second.invalidate_user_sessions("alice") == 0
    assert first.validate_session(token) is not None


# Settings


@pytest.mark.parametrize("store_class", [SessionStore, AsyncSessionStore])
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"active_period": -1}, id="negative-active"),
        pytest.param({"active_period": 0}, id="zero-active"),
        pytest.param({"active_period": timedelta(microseconds=999)}, id="sub-ms"),
        pytest.param({"idle_period": -1}, id="negative-idle"),
        pytest.param(
            {"idle_period": timedelta(milliseconds=-1)}, id="negative-idle-delta"
        ),
        pytest.param({"renewal_grace": -1}, id="negative-grace"),
        pytest.param({"active_period": 1.5}, id="float-seconds"),
        pytest.param({"active_period": True}, id="bool"),
        pytest.param({"idle_period": "60"}, id="string"),
        pytest.param({"key_prefix": "{app}:"}, id="braces-prefix"),
        pytest.param({"key_prefix": "app}"}, id="closing-brace-prefix"),
    ],
)
def test_store_rejects_invalid_settings(
    store_class: type[SessionStore | AsyncSessionStore], settings: dict[str, Any]
) -> None:
    with fakeredis.FakeRedis() as client, pytest.raises(ConfigurationError):
        store_class(client, **settings)


@pytest.mark.parametrize("store_class", [SessionStore, AsyncSessionStore])
def test_negative_grace_error_names_setting(
    store_class: type[SessionStore | AsyncSessionStore],
) -> None:
    with fakeredis.FakeRedis() as client, pytest.raises(ConfigurationError) as raised:
        store_class(client, renewal_grace=timedelta(seconds=-5))

    assert "renewal_grace" in str(raised.value)


@pytest.mark.parametrize("store_class", [SessionStore, AsyncSessionStore])
def test_store_accepts_seconds_and_timedelta(
    store_class: type[SessionStore | AsyncSessionStore],
) -> None:
    with fakeredis.FakeRedis() as client:
        store = store_class(client, active_period=90, idle_period=timedelta(hours=1))

    assert store.periods.active == 90_000
    assert store.periods.idle == 3_600_000


# Round trips to Redis


def warm_up(store: StoreDriver) -> str:
    """Create and renew a session so the client is connected and scripts cached."""
    token, _ = store.create_session("warm-up")
    renewed = store.renew_session(token)
    assert renewed is not None
    return renewed[0]


@pytest.mark.parametrize("harness", REAL_BACKENDS, indirect=True)
def test_validate_session_sends_one_command(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token = warm_up(store)

    traffic = measure_traffic(harness.raw, lambda: store.validate_session(token))

    assert traffic.requests == 1
    assert traffic.calls == {"get": 1}


@pytest.mark.parametrize("harness", REAL_BACKENDS, indirect=True)
@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param(UNKNOWN_TOKEN.split(".")[0], id="tag-only"),
        pytest.param(UNKNOWN_TOKEN + "!", id="trailing-character"),
        pytest.param("x" * 5000, id="oversized"),
    ],
)
def test_malformed_token_sends_no_command(
    harness: StoreHarness, store: StoreDriver, token: str
) -> None:
    warm_up(store)

    def use_malformed_token() -> None:
        assert store.validate_session(token) is None
        assert store.find_session(token) is None
        assert store.renew_session(token) is None
        assert store.invalidate_session(token) is False

    traffic = measure_traffic(harness.raw, use_malformed_token)

    assert traffic.requests == 0
    assert traffic.calls == {}


@pytest.mark.parametrize("harness", REAL_BACKENDS, indirect=True)
def test_renew_session_sends_one_evalsha(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token = warm_up(store)

    traffic = measure_traffic(harness.raw, lambda: store.renew_session(token))

    assert traffic.requests == 1
    assert traffic.calls.get("evalsha") == 1
    assert "eval" not in traffic.calls


@pytest.mark.parametrize("harness", REAL_BACKENDS, indirect=True)
def test_create_session_sends_one_evalsha(
    harness: StoreHarness, store: StoreDriver
) -> None:
    warm_up(store)

    traffic = measure_traffic(harness.raw, lambda: store.create_session("alice"))

    assert traffic.requests == 1
    assert traffic.calls.get("evalsha") == 1
    assert "eval" not in traffic.calls


@pytest.mark.parametrize("harness", REAL_BACKENDS, indirect=True)
def test_renew_reloads_flushed_script(
    harness: StoreHarness, store: StoreDriver
) -> None:
    token = warm_up(store)
    harness.raw.script_flush()

    traffic = measure_traffic(harness.raw, lambda: store.renew_session(token))

    assert traffic.requests == 2
    assert traffic.calls.get("evalsha") == 1
    assert traffic.calls.get("eval") == 1


@pytest.mark.parametrize("harness", BASIC_BACKENDS, indirect=True)
def test_store_survives_script_flush(harness: StoreHarness, store: StoreDriver) -> None:
    token = warm_up(store)
    harness.raw.script_flush()

    renewed = store.renew_session(token)

    assert renewed is not None
    assert store.validate_session(renewed[0]) is not None
    assert store.invalidate_user_sessions("warm-up") == 1


# Unreachable Redis


@pytest.mark.parametrize("harness", DRIVER_BACKENDS, indirect=True)
def test_unreachable_redis_raises_unavailable(
    harness: StoreHarness, caplog: pytest.LogCaptureFixture
) -> None:
    reachable = harness.open_store()
    token, _ = reachable.create_session("alice")
    store = harness.open_store(harness.unreachable_client(free_port()))
    caplog.set_level(logging.DEBUG)

    calls: list[tuple[str, Callable[[], object]]] = [
        ("find_session", lambda: store.find_session(token)),
        ("find_session", lambda: store.get_session(token)),
        ("find_session", lambda: store.validate_session(token)),
        ("renew_session", lambda: store.renew_session(token)),
        ("invalidate_session", lambda: store.invalidate_session(token)),
        ("create_session", lambda: store.create_session("alice")),
        ("invalidate_user_sessions", lambda: store.invalidate_user_sessions("a")),
        ("get_user_sessions", lambda: store.get_user_sessions("alice")),
    ]
    for operation, call in calls:
        with pytest.raises(StoreUnavailableError) as raised:
            call()

        assert raised.value.operation == operation
        assert token not in str(raised.value)
        assert token not in repr(raised.value)
        assert token not in str(raised.value.__cause__)

    assert caplog.records
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token.split(".")[1] not in record.getMessage()
