"""The stores' single retry after a connection error, for lookups and scripts.

A store sends a command once more when the first attempt fails with
``redis.ConnectionError``, because the pool has dropped the broken connection
by then. A second connection error, or any other Redis error on the first
attempt, raises StoreUnavailableError at once. Each test runs against the sync
and the async store over fakeredis, with a client stand-in that fails the next
commands on request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bearer_mw import StoreUnavailableError
from tests.store_support import DRIVER_BACKENDS, StoreDriver, StoreHarness, open_harness

OUTAGE_LOGGER = "bearer_mw.store"


class FlakyClient:
    """A Redis client stand-in that raises queued errors before passing commands on.

    It records each command name, failed attempts included.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.commands: list[str] = []
        self.errors: list[Exception] = []

    def fail_next(self, *errors: Exception) -> None:
        """Make the next commands raise ``errors``, one each, in order."""
        self.errors.extend(errors)

    def _record(self, args: tuple[Any, ...]) -> None:
        self.commands.append(str(args[0]))
        if self.errors:
            raise self.errors.pop(0)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Record the command, raise the next queued error or run the command."""
        self._record(args)
        return self.client.execute_command(*args, **options)


class AsyncFlakyClient(FlakyClient):
    """The asyncio form of :class:`FlakyClient`."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Record the command, raise the next queued error or await the command."""
        self._record(args)
        return await self.client.execute_command(*args, **options)


@pytest.fixture(params=DRIVER_BACKENDS)
def harness(request: pytest.FixtureRequest) -> Iterator[StoreHarness]:
    with open_harness(request) as opened:
        yield opened


@pytest.fixture
def flaky(harness: StoreHarness) -> FlakyClient:
    client = harness.new_client()
    if harness.backend.driver == "async":
        return AsyncFlakyClient(client)
    return FlakyClient(client)


@pytest.fixture
def store(harness: StoreHarness, flaky: FlakyClient) -> StoreDriver:
    client: Any = flaky
    return harness.open_store(client)


def lost_connection() -> redis.ConnectionError:
    return redis.ConnectionError("connection closed by the test")


def outage_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == OUTAGE_LOGGER and record.levelno == level
    ]


def test_find_session_retries_once(
    store: StoreDriver, flaky: FlakyClient, caplog: pytest.LogCaptureFixture
) -> None:
    token, created = store.create_session("ada")
    flaky.commands.clear()
    flaky.fail_next(lost_connection())

    with caplog.at_level(logging.INFO, logger=OUTAGE_LOGGER):
        found = store.find_session(token)

    assert found == created
    assert flaky.commands == ["GET", "GET"]
    # A retry that succeeds does not start an outage, so nothing is logged.
    assert outage_records(caplog, logging.WARNING) == []


def test_find_session_second_failure_raises(
    store: StoreDriver, flaky: FlakyClient, caplog: pytest.LogCaptureFixture
) -> None:
    token, _ = store.create_session("ada")
    flaky.commands.clear()
    flaky.fail_next(lost_connection(), lost_connection(), lost_connection())

    with (
        caplog.at_level(logging.INFO, logger=OUTAGE_LOGGER),
        pytest.raises(StoreUnavailableError) as raised,
    ):
        store.find_session(token)

    assert flaky.commands == ["GET", "GET"]
    assert raised.value.operation == "find_session"
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    assert token not in str(raised.value)
    warnings = outage_records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "find_session" in warnings[0]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(redis.TimeoutError("read timed out"), id="timeout"),
        pytest.param(redis.ResponseError("WRONGTYPE wrong kind of value"), id="reply"),
    ],
)
def test_find_session_other_error_not_retried(
    store: StoreDriver, flaky: FlakyClient, error: Exception
) -> None:
    token, _ = store.create_session("ada")
    flaky.commands.clear()
    flaky.fail_next(error)

    with pytest.raises(StoreUnavailableError) as raised:
        store.find_session(token)

    assert flaky.commands == ["GET"]
    assert raised.value.__cause__ is error


def test_renew_session_retries_once(store: StoreDriver, flaky: FlakyClient) -> None:
    first, _ = store.create_session("ada")
    second, _ = store.create_session("ada")
    # The first renewal loads the script, so the next one needs no EVAL.
    assert store.renew_session(first) is not None
    flaky.commands.clear()
    flaky.fail_next(lost_connection())

    renewed = store.renew_session(second)

    assert renewed is not None
    assert flaky.commands == ["EVALSHA", "EVALSHA"]
    assert store.find_session(second) is None
    assert store.find_session(renewed[0]) is not None


def test_renew_session_second_failure_raises(
    store: StoreDriver, flaky: FlakyClient
) -> None:
    token, _ = store.create_session("ada")
    flaky.commands.clear()
    flaky.fail_next(lost_connection(), lost_connection())

    with pytest.raises(StoreUnavailableError) as raised:
        store.renew_session(token)

    assert flaky.commands == ["EVALSHA", "EVALSHA"]
    assert raised.value.operation == "renew_session"
    assert store.find_session(token) is not None


def test_outage_logged_once_per_outage(
    store: StoreDriver, flaky: FlakyClient, caplog: pytest.LogCaptureFixture
) -> None:
    token, _ = store.create_session("ada")
    failed_lookups = 3

    with caplog.at_level(logging.INFO, logger=OUTAGE_LOGGER):
        for _ in range(failed_lookups):
            flaky.fail_next(lost_connection(), lost_connection())
            with pytest.raises(StoreUnavailableError):
                store.find_session(token)
        assert store.find_session(token) is not None
        assert store.find_session(token) is not None

    assert len(outage_records(caplog, logging.WARNING)) == 1
    recoveries = outage_records(caplog, logging.INFO)
    assert len(recoveries) == 1
    assert f"after {failed_lookups} failed calls" in recoveries[0]


def test_find_session_success_keeps_other_outage(
    store: StoreDriver, flaky: FlakyClient, caplog: pytest.LogCaptureFixture
) -> None:
    token, _ = store.create_session("ada")
    other, _ = store.create_session("ada")
    flaky.fail_next(lost_connection(), lost_connection())

    with caplog.at_level(logging.INFO, logger=OUTAGE_LOGGER):
        with pytest.raises(StoreUnavailableError):
            store.renew_session(other)
        assert store.find_session(token) is not None
        recoveries_after_lookup = outage_records(caplog, logging.INFO)
        assert store.renew_session(other) is not None

    # A lookup that succeeds ends no outage of another operation.
    assert recoveries_after_lookup == []
    warnings = outage_records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "renew_session" in warnings[0]
    recoveries = outage_records(caplog, logging.INFO)
    assert len(recoveries) == 1
    assert "for renew_session after 1 failed calls" in recoveries[0]
