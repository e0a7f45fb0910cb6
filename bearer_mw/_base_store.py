"""Settings shared by the sync and async session stores."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from redis.exceptions import (
    AskError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from .errors import ConfigurationError, StoreUnavailableError
from .operations import Operations, ScriptCall
from .outage import OutageLog
from .records import KeySpace
from .session import Clock, Periods, system_clock, to_milliseconds

__all__ = [
    "DEFAULT_ACTIVE_PERIOD",
    "DEFAULT_IDLE_PERIOD",
    "DEFAULT_RENEWAL_GRACE",
    "DEFAULT_WAIT_TIMEOUT",
    "REDIRECTIONS",
    "STORE_ERRORS",
    "AskError",
    "BaseStore",
    "MovedError",
    "NoScriptError",
    "RedisConnectionError",
    "RedisError",
    "ReplicaAcknowledgementError",
    "script_commands",
]

DEFAULT_ACTIVE_PERIOD = timedelta(days=1)
DEFAULT_IDLE_PERIOD = timedelta(days=14)
DEFAULT_RENEWAL_GRACE = timedelta(seconds=30)
DEFAULT_WAIT_TIMEOUT = timedelta(seconds=1)

#: Errors a store turns into StoreUnavailableError. redis-py's cluster client
#: raises RedisClusterException, which is not a RedisError, when it finds no
#: node for a slot, for example while a failover is in progress.
STORE_ERRORS = (RedisError, RedisClusterException)
#: Replies of a cluster node that no longer serves the slot it was asked about.
REDIRECTIONS = (MovedError, AskError)


class ReplicaAcknowledgementError(RedisError):
    """Fewer replicas than required acknowledged a write before WAIT timed out."""

    def __init__(self, acknowledged: int, required: int, timeout: int) -> None:
        super().__init__(
            f"{acknowledged} of {required} required replicas acknowledged the "
            f"write within {timeout} ms"
        )
        self.acknowledged = acknowledged
        self.required = required


class BaseStore:
    """Settings and error handling common to both stores.

    ``active_period`` and ``idle_period`` take a timedelta or whole seconds,
    and the idle period counts from the active expiry. ``renewal_grace`` is
    how long a repeated renewal of a renewed token returns the same successor,
    so a lost response does not log the client out. Zero turns this off.
    ``clock`` returns epoch milliseconds and exists for tests.

    ``wait_replicas`` above zero makes every write (create, renew, invalidate,
    invalidate all of a user) wait, with Redis ``WAIT``, until that many
    replicas of the primary that took the write acknowledge it, for at most
    ``wait_timeout`` (a timedelta or seconds). When fewer acknowledge in time,
    the method raises :class:`~bearer_mw.StoreUnavailableError` although the
    primary applied the write. Reads never wait.

    NOTE: a retried invalidation that finds nothing left to delete writes
    nothing, so its WAIT does not confirm the deletion made by the failed call.
    """

    def __init__(
        self,
        *,
        active_period: timedelta | int = DEFAULT_ACTIVE_PERIOD,
        idle_period: timedelta | int = DEFAULT_IDLE_PERIOD,
        renewal_grace: timedelta | int = DEFAULT_RENEWAL_GRACE,
        key_prefix: str = "bmw:",
        clock: Clock = system_clock,
        wait_replicas: int = 0,
        wait_timeout: timedelta | float = DEFAULT_WAIT_TIMEOUT,
    ) -> None:
        periods = Periods.from_settings(active_period, idle_period)
        grace = to_milliseconds(renewal_grace, "renewal_grace")
        self._operations = Operations(KeySpace(key_prefix), periods, clock, grace)
        self._outage = OutageLog()
        self.wait_replicas = _check_wait_replicas(wait_replicas)
        self.wait_timeout_ms = _wait_timeout_ms(wait_timeout)

    @property
    def periods(self) -> Periods:
        """Active and idle period lengths, in milliseconds."""
        return self._operations.periods

    @property
    def key_prefix(self) -> str:
        """Prefix of every Redis key this store writes."""
        return self._operations.keys.prefix

    def now(self) -> int:
        """Return the store's clock reading, in epoch milliseconds."""
        return self._operations.clock()

    def _wait_command(self) -> tuple[str, int, int]:
        return ("WAIT", self.wait_replicas, self.wait_timeout_ms)

    def _checked_reply(self, reply: Any, acknowledged: Any) -> Any:
        """Return the script's reply from a script-and-WAIT pipeline, or raise.

        Raises the error either command returned, or
        :class:`ReplicaAcknowledgementError` when WAIT counted too few replicas.
        """
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acknowledged, Exception):
            raise acknowledged
        if int(acknowledged) < self.wait_replicas:
            raise ReplicaAcknowledgementError(
                int(acknowledged), self.wait_replicas, self.wait_timeout_ms
            )
        return reply

    def _unavailable(
        self, operation: str, error: RedisError | RedisClusterException
    ) -> StoreUnavailableError:
        self._outage.failure(operation, error)
        if isinstance(error, ReplicaAcknowledgementError):
            return StoreUnavailableError(
                f"Redis applied {operation} on the primary, but only {error}; "
                "a failover now could lose it, so retry",
                operation=operation,
            )
        return StoreUnavailableError(
            f"Redis failed during {operation} ({type(error).__name__}); "
            "check that the server is reachable and retry",
            operation=operation,
        )


def script_commands(call: ScriptCall) -> list[tuple[Any, ...]]:
    """Return the EVALSHA command of ``call`` and its EVAL fallback."""
    script, keys = call.script, call.keys
    return [
        ("EVALSHA", script.sha, len(keys), *keys, *call.args),
        ("EVAL", script.source, len(keys), *keys, *call.args),
    ]


def _check_wait_replicas(wait_replicas: int) -> int:
    if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int):
        raise ConfigurationError(
            f"wait_replicas must be an int, got {type(wait_replicas).__name__}"
        )
    if wait_replicas < 0:
        raise ConfigurationError(
            f"wait_replicas must not be negative, got {wait_replicas}"
        )
    return wait_replicas


def _wait_timeout_ms(wait_timeout: timedelta | float) -> int:
    seconds = (
        wait_timeout.total_seconds()
        if isinstance(wait_timeout, timedelta)
        else float(wait_timeout)
    )
    if not math.isfinite(seconds):
        raise ConfigurationError(f"wait_timeout must be finite, got {wait_timeout!r}")
    milliseconds = round(seconds * 1000)
    # WAIT with a timeout of 0 blocks until enough replicas acknowledge, however
    # long that takes, so a store never sends it.
    if milliseconds < 1:
        raise ConfigurationError(
            f"wait_timeout must be at least 1 ms, got {wait_timeout!r}"
        )
    return milliseconds
