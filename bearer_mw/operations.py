"""Every store operation written once, as a generator of Redis calls.

An operation yields :class:`Command` or :class:`ScriptCall` values and receives
each reply back through ``send``; its return value is the result. It does no
I/O, so the sync and async stores are thin drivers that only execute calls.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, NamedTuple

from .errors import ConfigurationError, StoreUnavailableError
from .records import (
    KeySpace,
    SessionKeys,
    decode_live,
    decode_record,
    decode_renewed,
    encode_payload,
    encode_record,
    encode_renewed,
    to_base36,
)
from .scripts import CREATE, INVALIDATE, INVALIDATE_USER, RENEW, Script
from .session import Clock, Periods, Session
from .tokens import (
    TOKEN_PATTERN,
    new_token,
    open_successor,
    seal_successor,
    token_user_tag,
    user_tag,
)

__all__ = ["READ_COMMAND", "Command", "Operation", "Operations", "ScriptCall"]

#: How often "log out everywhere" re-reads a user's index that keeps changing
#: under it before it gives up.
MAX_INDEX_ATTEMPTS = 8
#: Maximum length of the chain of renewed records that invalidation follows.
MAX_SUCCESSOR_CHAIN = 16
#: The command that reads a session record: one GET of its key.
READ_COMMAND = "GET"


class Command(NamedTuple):
    """One Redis command; ``args`` go to ``execute_command`` as they are."""

    args: tuple[Any, ...]


class ScriptCall(NamedTuple):
    """One run of a Lua script over ``keys`` with ``args``."""

    script: Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]


Call = Command | ScriptCall
Operation = Generator[Call, Any, Any]


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8") if isinstance(reply, bytes) else reply


class Operations:
    """Session logic over Redis, parameterised by the store's settings."""

    def __init__(
        self, keys: KeySpace, periods: Periods, clock: Clock, renewal_grace: int
    ) -> None:
        if renewal_grace < 0:
            raise ConfigurationError(
                f"renewal_grace must not be negative, got {renewal_grace} ms"
            )
        self.keys = keys
        self.periods = periods
        self.clock = clock
        self.renewal_grace = renewal_grace

    def keys_for(self, token: str) -> SessionKeys | None:
        """Derive the keys of ``token``, or None when it cannot be ours."""
        # is_token_shaped, written out because this runs on every request.
        if TOKEN_PATTERN.fullmatch(token) is None:
            return None
        return self.keys.for_token(token)

    def create(
        self, user_id: str, attributes: Mapping[str, Any] | None
    ) -> Generator[Call, Any, tuple[str, Session]]:
        """Store a new session and return its token and value."""
        tag = user_tag(user_id)
        payload = encode_payload(user_id, attributes or {})
        token = new_token(tag)
        keys = self.keys.for_token(token)
        now = self.clock()
        active_expires, idle_expires = self.periods.expiries(now)
        record = encode_record(keys.check, now, active_expires, idle_expires, payload)
        yield ScriptCall(
            CREATE,
            (keys.session, keys.index),
            (record, idle_expires, keys.digest, now),
        )
        session = decode_record(record, keys, now)
        assert session is not None, "a fresh record decodes to a live session"
        return token, session

    def lookup_key(self, token: str) -> tuple[str, str] | None:
        """Return the digest and session key of ``token``, or None if not ours."""
        if TOKEN_PATTERN.fullmatch(token) is None:
            return None
        return self.keys.lookup_key(token)

    def found(self, digest: str, reply: bytes | str | None) -> Session | None:
        """Decode the reply to ``READ_COMMAND`` of the key named for ``digest``.

        The stores call :meth:`lookup_key`, send that one command and call
        this directly, without a generator, because a lookup runs on every
        request.
        """
        return decode_live(reply, digest, self.clock())

    def renew(self, token: str) -> Generator[Call, Any, tuple[str, Session] | None]:
        """Rotate ``token`` to a successor with fresh periods."""
        keys = self.keys_for(token)
        if keys is None:
            return None
        successor = new_token(token_user_tag(token))
        successor_keys = self.keys.for_token(successor)
        now = self.clock()
        active_expires, idle_expires = self.periods.expiries(now)

        renewed = ""
        grace_until = now + self.renewal_grace
        if self.renewal_grace > 0:
            sealed = seal_successor(token, successor)
            renewed = encode_renewed(
                keys.check, grace_until, successor_keys.digest, sealed
            )

        reply = yield ScriptCall(
            RENEW,
            (keys.session, successor_keys.session, keys.index),
            (
                now,
                keys.check,
                successor_keys.check,
                to_base36(active_expires),
                idle_expires,
                keys.digest,
                successor_keys.digest,
                renewed,
                grace_until,
                to_base36(idle_expires),
            ),
        )
        if not reply:
            return None
        kind, record = _text(reply[0]), reply[1]
        if kind == "renewed":
            session = decode_record(record, successor_keys, now)
            return None if session is None else (successor, session)
        return (yield from self._replay(token, keys, record, now))

    def _replay(
        self, token: str, keys: SessionKeys, record: bytes | str, now: int
    ) -> Generator[Call, Any, tuple[str, Session] | None]:
        # The token was renewed already, by a concurrent request or by an
        # earlier attempt whose response was lost: hand out the same successor.
        renewed = decode_renewed(record, keys)
        if renewed is None or renewed.grace_until <= now:
            return None
        successor = open_successor(
            token, renewed.sealed_successor, renewed.successor_digest
        )
        if successor is None:
            return None
        successor_keys = self.keys.for_token(successor)
        reply = yield Command((READ_COMMAND, successor_keys.session))
        session = decode_record(reply, successor_keys, self.clock())
        return None if session is None else (successor, session)

    def invalidate(self, token: str) -> Generator[Call, Any, bool]:
        """Delete the session of ``token`` and any successor it was renewed to."""
        keys = self.keys_for(token)
        if keys is None:
            return False
        tag = token_user_tag(token)
        digest = keys.digest
        removed = False
        for _ in range(MAX_SUCCESSOR_CHAIN):
            reply = yield ScriptCall(
                INVALIDATE,
                (self.keys.session_key(tag, digest), keys.index),
                (digest, self.clock()),
            )
            if not reply:
                break
            removed = True
            if isinstance(reply, int):
                break
            digest = _text(reply)
        return removed

    def invalidate_user(self, user_id: str) -> Generator[Call, Any, int]:
        """Delete every session of ``user_id``; return how many were deleted."""
        tag = user_tag(user_id)
        index = self.keys.index_key(tag)
        for _ in range(MAX_INDEX_ATTEMPTS):
            members = [_text(m) for m in (yield Command(("ZRANGE", index, 0, -1)))]
            mine = yield from self._sessions_of(user_id, tag, index, members)
            removed = yield ScriptCall(
                INVALIDATE_USER,
                (index, *(self.keys.session_key(tag, s.session_id) for s in mine)),
                (
                    self.clock(),
                    len(members),
                    *members,
                    *(s.session_id for s in mine),
                ),
            )
            if int(removed) >= 0:
                return int(removed)
        raise StoreUnavailableError(
            f"the session index of one user changed on each of {MAX_INDEX_ATTEMPTS} "
            "attempts to invalidate it; retry later",
            operation="invalidate_user_sessions",
        )

    def user_sessions(self, user_id: str) -> Generator[Call, Any, list[Session]]:
        """List the active and idle sessions of ``user_id``, oldest first."""
        tag = user_tag(user_id)
        index = self.keys.index_key(tag)
        now = self.clock()
        members = yield Command(("ZRANGE", index, now + 1, "+inf", "BYSCORE"))
        digests = [_text(m) for m in members]
        sessions = yield from self._sessions_of(user_id, tag, index, digests)
        sessions.sort(key=lambda s: s.created)
        return sessions

    def _sessions_of(
        self, user_id: str, tag: str, index: str, digests: list[str]
    ) -> Generator[Call, Any, list[Session]]:
        # Users whose tags are equal share an index, so each record's own user
        # id decides whose session it is.
        if not digests:
            return []
        session_keys = [self.keys.session_key(tag, digest) for digest in digests]
        records = yield Command(("MGET", *session_keys))
        now = self.clock()
        sessions = []
        for digest, key, record in zip(digests, session_keys, records, strict=True):
            session = decode_record(record, SessionKeys(digest, key, index), now)
            if session is not None and session.user_id == user_id:
                sessions.append(session)
        return sessions
