"""Tests of the session value, its periods and the two-period state rule.

The boundary tests run twice: on :func:`session_state` alone, and through a
store over fakeredis and real Redis with the clock moved to each boundary.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bearer_mw import InvalidSessionError, Session
from bearer_mw.errors import ConfigurationError
from bearer_mw.session import (
    Periods,
    build_session,
    scopes_of,
    session_state,
    system_clock,
)
from tests.store_support import ALL_BACKENDS, BASIC_BACKENDS, StoreHarness, open_harness

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ACTIVE_MS = 30_000
IDLE_MS = 90_000

#: Rows of (expiry the clock is set to, offset from it in ms, expected state).
BOUNDARIES = [
    pytest.param("active_expires", -1, "active", id="active-minus-1"),
    pytest.param("active_expires", 0, "idle", id="active-exact"),
    pytest.param("active_expires", 1, "idle", id="active-plus-1"),
    pytest.param("idle_expires", -1, "idle", id="idle-minus-1"),
    pytest.param("idle_expires", 0, "dead", id="idle-exact"),
    pytest.param("idle_expires", 1, "dead", id="idle-plus-1"),
]


@pytest.fixture(params=BASIC_BACKENDS)
def harness(request: pytest.FixtureRequest) -> Iterator[StoreHarness]:
    with open_harness(request) as opened:
        yield opened


def make_session(**changes: Any) -> Session:
    values: dict[str, Any] = {
        "session_id": "digest",
        "user_id": "alice",
        "attributes": {},
        "created": 1_700_000_000_000,
        "active_expires": 1_700_000_030_000,
        "idle_expires": 1_700_000_120_000,
        "state": "active",
    }
    values.update(changes)
    return Session(**values)


def field_values(session: Session) -> dict[str, Any]:
    return {
        field.name: getattr(session, field.name)
        for field in dataclasses.fields(Session)
    }


# The state rule


@pytest.mark.parametrize(("expiry", "offset", "expected"), BOUNDARIES)
def test_session_state_at_boundary(expiry: str, offset: int, expected: str) -> None:
    expiries = {"active_expires": 1_700_000_030_000, "idle_expires": 1_700_000_120_000}
    now = expiries[expiry] + offset

    assert session_state(now, **expiries) == expected


@pytest.mark.parametrize(("expiry", "offset", "expected"), BOUNDARIES)
def test_session_at_boundary(expiry: str, offset: int, expected: str) -> None:
    session = make_session()
    now = getattr(session, expiry) + offset

    assert session.at(now) == expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(-1, "active", id="before"),
        pytest.param(0, "dead", id="exact"),
    ],
)
def test_session_state_without_idle_period(offset: int, expected: str) -> None:
    assert session_state(1_000 + offset, 1_000, 1_000) == expected


@pytest.mark.parametrize(("expiry", "offset", "expected"), BOUNDARIES)
def test_store_state_at_boundary(
    harness: StoreHarness, expiry: str, offset: int, expected: str
) -> None:
    store = harness.open_store(active_period=30, idle_period=90)
    token, created = store.create_session("alice")
    harness.clock.set(getattr(created, expiry) + offset)

    found = store.find_session(token)
    validated = store.validate_session(token)

    if expected == "dead":
        assert found is None
        with pytest.raises(InvalidSessionError):
            store.get_session(token)
    else:
        assert found is not None
        assert found.state == expected
        assert store.get_session(token).state == expected
    assert (validated is not None) is (expected == "active")


@pytest.mark.parametrize(("expiry", "offset", "expected"), BOUNDARIES)
def test_store_renewal_at_boundary(
    harness: StoreHarness, expiry: str, offset: int, expected: str
) -> None:
    store = harness.open_store(active_period=30, idle_period=90)
    token, created = store.create_session("alice")
    harness.clock.set(getattr(created, expiry) + offset)

    renewed = store.renew_session(token)

    assert (renewed is None) is (expected == "dead")


@pytest.mark.parametrize(("expiry", "offset", "expected"), BOUNDARIES)
def test_store_listing_at_boundary(
    harness: StoreHarness, expiry: str, offset: int, expected: str
) -> None:
    store = harness.open_store(active_period=30, idle_period=90)
    _, created = store.create_session("alice")
    harness.clock.set(getattr(created, expiry) + offset)

    states = [session.state for session in store.get_user_sessions("alice")]

    assert states == ([] if expected == "dead" else [expected])


@pytest.mark.parametrize("harness", ALL_BACKENDS, indirect=True)
def test_store_times_are_integer_milliseconds(harness: StoreHarness) -> None:
    harness.clock.advance(123)
    store = harness.open_store(
        active_period=timedelta(milliseconds=1_001),
        idle_period=timedelta(milliseconds=2_003),
    )
    token, created = store.create_session("alice")
    harness.clock.advance(7)
    renewed = store.renew_session(token)
    assert renewed is not None

    for session in (created, store.get_session(renewed[0]), renewed[1]):
        for value in (session.created, session.active_expires, session.idle_expires):
            assert type(value) is int
    assert created.active_expires - created.created == 1_001
    assert created.idle_expires - created.active_expires == 2_003
    assert renewed[1].active_expires == harness.clock.now + 1_001


# The session value


def test_session_is_frozen() -> None:
    session = make_session()

    with pytest.raises(dataclasses.FrozenInstanceError):
        session.user_id = "mallory"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.state = "active"  # type: ignore[misc]


def test_session_attributes_are_read_only(harness: StoreHarness) -> None:
    store = harness.open_store()
    attributes = {"role": "user"}
    _, session = store.create_session("alice", attributes)

    attributes["role"] = "admin"
    with pytest.raises(TypeError):
        session.attributes["role"] = "admin"  # type: ignore[index]

    assert session.attributes["role"] == "user"


def test_session_repr_hides_secrets(harness: StoreHarness) -> None:
    store = harness.open_store()
    token, session = store.create_session("alice", {"api_key": "hunter2"})

    representation = repr(session)

    assert token not in representation
    assert token.split(".")[1] not in representation
    assert "hunter2" not in representation
    assert session.session_id in representation


def test_build_session_takes_every_field() -> None:
    names = [field.name for field in dataclasses.fields(Session)]

    assert list(inspect.signature(build_session).parameters) == names


def test_build_session_equals_constructor() -> None:
    expected = make_session(attributes={"role": "admin"}, state="idle")

    built = build_session(**field_values(expected))

    assert type(built) is Session
    assert built == expected
    assert repr(built) == repr(expected)
    for field in dataclasses.fields(Session):
        assert getattr(built, field.name) is getattr(expected, field.name)


def test_build_session_is_frozen() -> None:
    session = build_session(**field_values(make_session()))

    with pytest.raises(dataclasses.FrozenInstanceError):
        session.user_id = "mallory"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del session.state


def test_build_session_copies_and_pickles() -> None:
    session = build_session(**field_values(make_session(attributes={"n": 1})))

    assert dataclasses.replace(session, state="idle").state == "idle"
    assert pickle.loads(pickle.dumps(session)) == session


def test_session_datetimes_are_aware_utc() -> None:
    session = make_session(
        created=1_700_000_000_001,
        active_expires=1_700_000_030_999,
        idle_expires=1_700_000_120_500,
    )

    for moment, milliseconds in (
        (session.created_at, session.created),
        (session.active_expires_at, session.active_expires),
        (session.idle_expires_at, session.idle_expires),
    ):
        assert moment.tzinfo is not None
        assert moment.utcoffset() == timedelta(0)
        assert moment == EPOCH + timedelta(milliseconds=milliseconds)


@pytest.mark.parametrize(
    "milliseconds",
    [
        pytest.param(0, id="epoch"),
        pytest.param(1, id="one"),
        pytest.param(4_102_444_800_123, id="year-2100"),
        pytest.param(32_503_680_000_001, id="year-3000"),
        pytest.param(194_767_621_679_074, id="year-8141"),
    ],
)
def test_session_datetime_keeps_milliseconds(milliseconds: int) -> None:
    session = make_session(created=milliseconds)

    assert session.created_at == EPOCH + timedelta(milliseconds=milliseconds)


def test_session_scopes_from_attributes() -> None:
    assert make_session(attributes={"scopes": "read  write"}).scopes == (
        "read",
        "write",
    )
    assert make_session(attributes={"scopes": ["read", 3, "write"]}).scopes == (
        "read",
        "write",
    )
    assert make_session(attributes={"scopes": None}).scopes == ()
    assert make_session().scopes == ()


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param({"scopes": ""}, (), id="empty-string"),
        pytest.param({"scopes": ("a", "b")}, ("a", "b"), id="tuple"),
        pytest.param({"scopes": {"a": 1}}, (), id="mapping"),
        pytest.param({"scopes": 7}, (), id="number"),
    ],
)
def test_scopes_of_table(attributes: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert scopes_of(attributes) == expected


# Periods and the clock


@pytest.mark.parametrize(
    ("active", "idle", "expected"),
    [
        pytest.param(60, 3_600, Periods(60_000, 3_600_000), id="seconds"),
        pytest.param(
            timedelta(minutes=1),
            timedelta(hours=1),
            Periods(60_000, 3_600_000),
            id="timedelta",
        ),
        pytest.param(
            timedelta(milliseconds=1_500, microseconds=999),
            timedelta(days=2, milliseconds=1),
            Periods(1_500, 172_800_001),
            id="timedelta-milliseconds",
        ),
        pytest.param(1, 0, Periods(1_000, 0), id="no-idle-period"),
        pytest.param(timedelta(milliseconds=1), 0, Periods(1, 0), id="shortest-active"),
    ],
)
def test_periods_from_settings(
    active: timedelta | int, idle: timedelta | int, expected: Periods
) -> None:
    assert Periods.from_settings(active, idle) == expected


@pytest.mark.parametrize(
    ("active", "idle"),
    [
        pytest.param(0, 0, id="zero-active"),
        pytest.param(timedelta(microseconds=999), 0, id="sub-millisecond-active"),
        pytest.param(-5, 10, id="negative-active"),
        pytest.param(5, -1, id="negative-idle"),
        pytest.param(5, timedelta(microseconds=-1), id="negative-idle-timedelta"),
        pytest.param(1.5, 10, id="float"),
        pytest.param(True, 10, id="bool"),
        pytest.param(5, "10", id="string"),
        pytest.param(5, None, id="none"),
    ],
)
def test_periods_reject_invalid(active: Any, idle: Any) -> None:
    with pytest.raises(ConfigurationError):
        Periods.from_settings(active, idle)


def test_periods_expiries_are_consecutive() -> None:
    periods = Periods(1_000, 5_000)

    assert periods.expiries(10_000) == (11_000, 16_000)


def test_system_clock_returns_epoch_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    now = system_clock()
    after = time.time_ns() // 1_000_000

    assert type(now) is int
    assert before <= now <= after
