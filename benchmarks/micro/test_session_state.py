from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bearer_mw import Session, SessionState
from bearer_mw.session import Periods, session_state

DAY_MS = 86_400_000
CREATED = 1_700_000_000_000
ACTIVE_EXPIRES, IDLE_EXPIRES = Periods(active=DAY_MS, idle=14 * DAY_MS).expiries(
    CREATED
)
SESSION = Session(
    session_id="benchmark-session",
    user_id="user-000001",
    attributes={"scopes": ["read"]},
    created=CREATED,
    active_expires=ACTIVE_EXPIRES,
    idle_expires=IDLE_EXPIRES,
    state="active",
)
INSTANTS = [
    pytest.param(CREATED + 1, "active", id="active"),
    pytest.param(ACTIVE_EXPIRES, "idle", id="idle-at-active-expiry"),
    pytest.param(IDLE_EXPIRES - 1, "idle", id="idle"),
    pytest.param(IDLE_EXPIRES, "dead", id="dead-at-idle-expiry"),
]


@pytest.mark.parametrize(("now", "expected"), INSTANTS)
def test_session_state(
    benchmark: BenchmarkFixture, now: int, expected: SessionState
) -> None:
    state = benchmark(session_state, now, ACTIVE_EXPIRES, IDLE_EXPIRES)

    assert state == expected


@pytest.mark.parametrize(("now", "expected"), INSTANTS)
def test_session_at(
    benchmark: BenchmarkFixture, now: int, expected: SessionState
) -> None:
    state = benchmark(SESSION.at, now)

    assert state == expected


def test_periods_expiries(benchmark: BenchmarkFixture) -> None:
    periods = Periods(active=DAY_MS, idle=14 * DAY_MS)

    active_expires, idle_expires = benchmark(periods.expiries, CREATED)

    assert active_expires == CREATED + DAY_MS
    assert idle_expires == CREATED + 15 * DAY_MS


def test_session_scopes(benchmark: BenchmarkFixture) -> None:
    scopes = benchmark(lambda: SESSION.scopes)

    assert scopes == ("read",)
