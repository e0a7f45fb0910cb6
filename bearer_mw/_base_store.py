"""Settings shared by the sync and async session stores."""

from __future__ import annotations

from datetime import timedelta

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from .errors import StoreUnavailableError
from .operations import Operations
from .outage import OutageLog
from .records import KeySpace
from .session import Clock, Periods, system_clock

__all__ = [
    "DEFAULT_ACTIVE_PERIOD",
    "DEFAULT_IDLE_PERIOD",
    "DEFAULT_RENEWAL_GRACE",
    "BaseStore",
    "NoScriptError",
    "RedisConnectionError",
    "RedisError",
]

DEFAULT_ACTIVE_PERIOD = timedelta(days=1)
DEFAULT_IDLE_PERIOD = timedelta(days=14)
DEFAULT_RENEWAL_GRACE = timedelta(seconds=30)


class BaseStore:
    """Settings and error handling common to both stores.

    ``active_period`` and ``idle_period`` take a timedelta or whole seconds;
    the idle period counts from the active expiry. ``renewal_grace`` is how
    long a renewed token keeps returning the same successor to a repeated
    renewal, so a lost response does not log the client out; zero turns this
    off. ``clock`` returns epoch milliseconds and exists for tests.
    """

    def __init__(
        self,
        *,
        active_period: timedelta | int = DEFAULT_ACTIVE_PERIOD,
        idle_period: timedelta | int = DEFAULT_IDLE_PERIOD,
        renewal_grace: timedelta | int = DEFAULT_RENEWAL_GRACE,
        key_prefix: str = "bmw:",
        clock: Clock = system_clock,
    ) -> None:
        periods = Periods.from_settings(active_period, idle_period)
        grace = Periods.from_settings(1, renewal_grace).idle
        self._operations = Operations(KeySpace(key_prefix), periods, clock, grace)
        self._outage = OutageLog()

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

    def _unavailable(self, operation: str, error: RedisError) -> StoreUnavailableError:
        self._outage.failure(operation, error)
        return StoreUnavailableError(
            f"Redis failed during {operation} ({type(error).__name__}); "
            "check that the server is reachable and retry",
            operation=operation,
        )
