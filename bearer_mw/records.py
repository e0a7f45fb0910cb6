"""Redis key names and the packed records stored under them, with no I/O.

Key layout, for the default prefix ``bmw:``::

    bmw:s:{<user tag>}<token digest>   session record, expires at idle expiry
    bmw:u:{<user tag>}                 sorted set: token digests of the user's
                                       sessions, scored by idle expiry

A live record is ``1|<check>|<created>|<active>|<idle>|<payload>``: ``check``
repeats the start of the token digest, the three times are epoch milliseconds
in base 36 (8 characters instead of 13) and ``payload`` is compact JSON
``[user_id, attributes]``. The scripts treat the payload as opaque, so renewal
never re-encodes it.

A renewed record, kept for the renewal grace window, is
``2|<check>|<grace until>|<successor digest>|<sealed successor token>``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .errors import ConfigurationError
from .session import Session, new_session, session_state
from .tokens import CHECK_LENGTH, USER_TAG_LENGTH, token_digest

__all__ = [
    "KeySpace",
    "RenewedRecord",
    "SessionKeys",
    "decode_live",
    "decode_record",
    "decode_renewed",
    "encode_payload",
    "encode_record",
    "encode_renewed",
    "to_base36",
]

LIVE = "1"
RENEWED = "2"

# A record time is 1 to 13 lowercase base-36 digits, so int(_, 36) never
# receives the signs, spaces or underscores it would otherwise accept.
_TIME_DIGITS = 13


@dataclass(slots=True)
class SessionKeys:
    """Everything derived from one token that names it in Redis.

    Not frozen, because a frozen dataclass costs a microsecond more to build
    and one is built per request; nothing changes it after construction.
    """

    digest: str
    session: str
    index: str

    @property
    def check(self) -> str:
        """Prefix of the digest that the stored record must repeat."""
        return self.digest[:CHECK_LENGTH]


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Key names under one prefix."""

    prefix: str = "bmw:"

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError(
                f"key_prefix {self.prefix!r} must not contain braces, because "
                "Redis Cluster would read them as a hash tag"
            )

    def session_key(self, tag: str, digest: str) -> str:
        """Name the key of one session."""
        return f"{self.prefix}s:{{{tag}}}{digest}"

    def index_key(self, tag: str) -> str:
        """Name the sorted set that indexes one user's sessions."""
        return f"{self.prefix}u:{{{tag}}}"

    def for_token(self, token: str) -> SessionKeys:
        """Derive the keys of a token that has the issued shape."""
        digest, session = self.lookup_key(token)
        return SessionKeys(digest, session, self.index_key(token[:USER_TAG_LENGTH]))

    def lookup_key(self, token: str) -> tuple[str, str]:
        """Return the digest and session key of a token that has the issued shape.

        :meth:`for_token` without the index key and the :class:`SessionKeys`,
        which a lookup does not need. The key is formatted here rather than by
        :meth:`session_key`, because this runs on every request.
        """
        digest = token_digest(token)
        return digest, f"{self.prefix}s:{{{token[:USER_TAG_LENGTH]}}}{digest}"


def encode_payload(user_id: str, attributes: Mapping[str, Any]) -> str:
    """Encode the user id and attributes as compact JSON."""
    try:
        payload = json.dumps(
            [user_id, dict(attributes)],
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        )
        # Lone surrogates survive json.dumps but cannot be sent to Redis.
        payload.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigurationError(
            f"the user id and session attributes must be JSON-serialisable text: {exc}"
        ) from exc
    return payload


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base36(number: int) -> str:
    """Encode a non-negative integer in base 36, which Lua's tonumber reads."""
    if number < 0:
        raise ValueError(f"cannot encode negative time {number} in a record")
    if number == 0:
        return "0"
    digits = []
    while number:
        number, remainder = divmod(number, 36)
        digits.append(_DIGITS[remainder])
    return "".join(reversed(digits))


def from_base36(text: str) -> int:
    """Decode what :func:`to_base36` wrote; raise ValueError on anything else."""
    if not (text.isascii() and text.isalnum()):
        raise ValueError("a record time must be base-36 digits")
    return int(text, 36)


def encode_record(
    check: str, created: int, active_expires: int, idle_expires: int, payload: str
) -> str:
    """Pack a live session record."""
    times = (
        f"{to_base36(created)}|{to_base36(active_expires)}|{to_base36(idle_expires)}"
    )
    return f"{LIVE}|{check}|{times}|{payload}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8") if isinstance(reply, bytes) else reply


# The C scanner behind json.loads, called directly: json.loads adds a byte
# order mark check, two whitespace scans and two Python calls, which cost more
# than decoding a short payload.
# The type stubs do not declare the scanner attribute.
_SCAN_JSON: Callable[[str, int], tuple[Any, int]]
_SCAN_JSON = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _load_payload(payload: str) -> Any:
    # Whatever the scanner rejects or leaves unread goes to json.loads, so the
    # results and errors are those of json.loads.
    try:
        value, end = _SCAN_JSON(payload, 0)
    except (StopIteration, ValueError):
        return json.loads(payload)
    if end != len(payload):
        return json.loads(payload)
    return value


def decode_record(
    reply: bytes | str | None, keys: SessionKeys, now: int
) -> Session | None:
    """Unpack a live record read for ``keys``, or return None.

    None covers a missing key, a renewed record, a record that belongs to
    another key, a corrupt record and a dead session.
    """
    return decode_live(reply, keys.digest, now)


def decode_live(reply: bytes | str | None, digest: str, now: int) -> Session | None:
    """Unpack a live record read from the session key of ``digest``, or return None.

    :func:`decode_record` for the lookup path, which names the key by
    :meth:`KeySpace.lookup_key` and builds no :class:`SessionKeys`.
    """
    if reply is None:
        return None
    try:
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8")
        elif not isinstance(reply, str):
            return None
        # A split rather than a regular expression, because in one process
        # right after a Redis read, when little of the regular expression
        # engine is left in the CPU caches, it took about 1 µs less.
        kind, check, created, active, idle, payload = reply.split("|", 5)
        times = created + active + idle
        if (
            kind != LIVE
            or not (times.isascii() and times.isalnum())
            or not (times.islower() or times.isdigit())
            or not (0 < len(created) <= _TIME_DIGITS)
            or not (0 < len(active) <= _TIME_DIGITS)
            or not (0 < len(idle) <= _TIME_DIGITS)
        ):
            return None
        if not hmac.compare_digest(check, digest[:CHECK_LENGTH]):
            return None
        active_expires = int(active, 36)
        idle_expires = int(idle, 36)
        state = session_state(now, active_expires, idle_expires)
        if state == "dead":
            return None
        created_at = int(created, 36)
        user_id, attributes = _load_payload(payload)
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        return None
    if type(user_id) is not str or type(attributes) is not dict:
        return None
    # Read-only without a copy, because no other code references the decoded
    # dict. Nested lists and dicts stay mutable.
    return new_session(
        digest,
        user_id,
        MappingProxyType(attributes),
        created_at,
        active_expires,
        idle_expires,
        state,
    )


@dataclass(frozen=True, slots=True)
class RenewedRecord:
    """Record of a renewed token, kept during the renewal grace window."""

    grace_until: int
    successor_digest: str
    sealed_successor: str = ""

    def __repr__(self) -> str:
        return f"RenewedRecord(grace_until={self.grace_until})"


def encode_renewed(
    check: str, grace_until: int, successor_digest: str, sealed_successor: str
) -> str:
    """Pack a renewed record."""
    return f"{RENEWED}|{check}|{grace_until}|{successor_digest}|{sealed_successor}"


def decode_renewed(
    reply: bytes | str | None, keys: SessionKeys
) -> RenewedRecord | None:
    """Unpack a renewed record read for ``keys``, or return None."""
    if reply is None:
        return None
    try:
        text = _text(reply)
        kind, check, grace_until, successor_digest, sealed = text.split("|", 4)
        if kind != RENEWED or not hmac.compare_digest(check, keys.check):
            return None
        return RenewedRecord(int(grace_until), successor_digest, sealed)
    except (ValueError, UnicodeDecodeError):
        return None
