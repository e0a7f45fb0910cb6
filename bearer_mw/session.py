"""The session value and the two-period rule that decides its state, with no I/O.

A session is **active** from creation until ``active_expires``, then **idle**
until ``idle_expires``, then **dead**. Both expiries are exclusive, in integer
milliseconds since the Unix epoch: at exactly ``active_expires`` a session is
already idle, and at exactly ``idle_expires`` it is already dead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .errors import ConfigurationError

__all__ = [
    "Clock",
    "Periods",
    "Session",
    "SessionState",
    "session_state",
    "system_clock",
]

SessionState = Literal["active", "idle", "dead"]

#: A clock returns the current time in integer milliseconds since the epoch.
Clock = Callable[[], int]


def system_clock() -> int:
    """Return the wall-clock time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def session_state(now: int, active_expires: int, idle_expires: int) -> SessionState:
    """Decide the state of a session at ``now``, all in epoch milliseconds."""
    if now < active_expires:
        return "active"
    if now < idle_expires:
        return "idle"
    return "dead"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_datetime(milliseconds: int) -> datetime:
    # Integer arithmetic keeps every millisecond, which float seconds lose
    # for dates a few centuries out.
    return _EPOCH + timedelta(milliseconds=milliseconds)


def to_milliseconds(period: timedelta | int, name: str) -> int:
    """Convert a timedelta or whole seconds to integer milliseconds.

    ``name`` is the setting's name, for the error message.
    """
    if isinstance(period, timedelta):
        milliseconds = (
            period.days * 86_400_000
            + period.seconds * 1000
            + period.microseconds // 1000
        )
    elif isinstance(period, int) and not isinstance(period, bool):
        milliseconds = period * 1000
    else:
        raise ConfigurationError(
            f"{name} must be a timedelta or whole seconds, got {type(period).__name__}"
        )
    return milliseconds


@dataclass(frozen=True, slots=True)
class Periods:
    """Lengths of the active and idle periods, in milliseconds.

    The idle period counts from the active expiry, so a session lives for
    ``active + idle`` milliseconds in all unless it is renewed.
    """

    active: int
    idle: int

    @classmethod
    def from_settings(
        cls, active_period: timedelta | int, idle_period: timedelta | int
    ) -> Periods:
        """Build periods from timedeltas or whole seconds, checking their range."""
        active = to_milliseconds(active_period, "active_period")
        idle = to_milliseconds(idle_period, "idle_period")
        if active <= 0:
            raise ConfigurationError(
                f"active_period must be at least 1 ms, got {active} ms"
            )
        if idle < 0:
            raise ConfigurationError(f"idle_period must not be negative, got {idle} ms")
        return cls(active, idle)

    def expiries(self, now: int) -> tuple[int, int]:
        """Return the active and idle expiries of a session started at ``now``."""
        active_expires = now + self.active
        return active_expires, active_expires + self.idle


@dataclass(frozen=True, slots=True)
class Session:
    """A server-side session as read from Redis at one instant.

    ``session_id`` is a digest of the token, safe to show and to log; the token
    itself is never part of a session. Times are integer milliseconds since the
    epoch, and the ``*_at`` properties give them as aware UTC datetimes.
    """

    session_id: str
    user_id: str
    attributes: Mapping[str, Any] = field(repr=False)
    created: int
    active_expires: int
    idle_expires: int
    state: SessionState

    @property
    def created_at(self) -> datetime:
        """Creation time of the first token of this session."""
        return _to_datetime(self.created)

    @property
    def active_expires_at(self) -> datetime:
        """First instant at which the session is no longer active."""
        return _to_datetime(self.active_expires)

    @property
    def idle_expires_at(self) -> datetime:
        """First instant at which the session is dead."""
        return _to_datetime(self.idle_expires)

    @property
    def scopes(self) -> tuple[str, ...]:
        """Granted scopes, from the ``scopes`` attribute (a list or a string)."""
        return scopes_of(self.attributes)

    def at(self, now: int) -> SessionState:
        """Decide the state of this session at another instant."""
        return session_state(now, self.active_expires, self.idle_expires)


# Slot descriptors of the Session fields. Assigning through them skips the
# generated __init__, which is slower because a frozen class has to call
# object.__setattr__ for each field.
_SET_SESSION_ID = Session.__dict__["session_id"].__set__
_SET_USER_ID = Session.__dict__["user_id"].__set__
_SET_ATTRIBUTES = Session.__dict__["attributes"].__set__
_SET_CREATED = Session.__dict__["created"].__set__
_SET_ACTIVE_EXPIRES = Session.__dict__["active_expires"].__set__
_SET_IDLE_EXPIRES = Session.__dict__["idle_expires"].__set__
_SET_STATE = Session.__dict__["state"].__set__


def build_session(
    *,
    session_id: str,
    user_id: str,
    attributes: Mapping[str, Any],
    created: int,
    active_expires: int,
    idle_expires: int,
    state: SessionState,
) -> Session:
    """Build a Session without running its ``__init__``, for the per-request path.

    The result is equal to ``Session(...)`` called with the same arguments and
    just as frozen. The arguments are stored as given, without any check.
    """
    return new_session(
        session_id, user_id, attributes, created, active_expires, idle_expires, state
    )


def new_session(  # noqa: PLR0917 - one positional argument per field
    session_id: str,
    user_id: str,
    attributes: Mapping[str, Any],
    created: int,
    active_expires: int,
    idle_expires: int,
    state: SessionState,
) -> Session:
    """:func:`build_session` with positional arguments, in field order.

    The record decoder calls this once per request, and keyword arguments
    cost more to pass.
    """
    session: Session = object.__new__(Session)
    _SET_SESSION_ID(session, session_id)
    _SET_USER_ID(session, user_id)
    _SET_ATTRIBUTES(session, attributes)
    _SET_CREATED(session, created)
    _SET_ACTIVE_EXPIRES(session, active_expires)
    _SET_IDLE_EXPIRES(session, idle_expires)
    _SET_STATE(session, state)
    return session


def scopes_of(attributes: Mapping[str, Any]) -> tuple[str, ...]:
    """Read granted scopes from session attributes.

    ``scopes`` may be a space-separated string, as in an OAuth token response,
    or a list of strings. Anything else grants no scope.
    """
    granted = attributes.get("scopes")
    if isinstance(granted, str):
        return tuple(granted.split())
    if isinstance(granted, list | tuple):
        # A list comprehension, because a generator costs a microsecond more
        # and this runs once per authenticated request.
        return tuple([item for item in granted if isinstance(item, str)])
    return ()
