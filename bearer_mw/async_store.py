"""The asyncio session store, a thin driver over :mod:`bearer_mw.operations`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis.asyncio

from ._base_store import BaseStore, NoScriptError, RedisConnectionError, RedisError
from .errors import InvalidSessionError
from .operations import Call, Command, Operation
from .session import Session

__all__ = ["AsyncSessionStore"]


class AsyncSessionStore(BaseStore):
    """Sessions in Redis behind bearer tokens, over an asyncio client.

    ``client`` is a ``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster``
    or a Sentinel-managed asyncio client. Methods and semantics match
    :class:`~bearer_mw.SessionStore`, awaited.
    """

    def __init__(self, client: redis.asyncio.Redis | Any, **settings: Any) -> None:
        super().__init__(**settings)
        self.client = client

    def __repr__(self) -> str:
        return f"AsyncSessionStore(key_prefix={self.key_prefix!r})"

    async def create_session(
        self, user_id: str, attributes: Mapping[str, Any] | None = None
    ) -> tuple[str, Session]:
        """Start a session for ``user_id``; return its token and value."""
        result: tuple[str, Session] = await self._run(
            "create_session", self._operations.create(user_id, attributes)
        )
        return result

    async def find_session(self, token: str) -> Session | None:
        """Return the active or idle session of ``token``, or None."""
        result: Session | None = await self._run(
            "find_session", self._operations.find(token)
        )
        return result

    async def get_session(self, token: str) -> Session:
        """Return the active or idle session of ``token``, or raise."""
        session = await self.find_session(token)
        if session is None:
            raise InvalidSessionError("no active or idle session for this token")
        return session

    async def validate_session(self, token: str) -> Session | None:
        """Return the session of ``token`` if it is active, else None."""
        session = await self.find_session(token)
        if session is None or session.state != "active":
            return None
        return session

    async def renew_session(self, token: str) -> tuple[str, Session] | None:
        """Replace an active or idle session's token with a new one."""
        result: tuple[str, Session] | None = await self._run(
            "renew_session", self._operations.renew(token)
        )
        return result

    async def invalidate_session(self, token: str) -> bool:
        """End the session of ``token``; return whether one existed."""
        result: bool = await self._run(
            "invalidate_session", self._operations.invalidate(token)
        )
        return result

    async def invalidate_user_sessions(self, user_id: str) -> int:
        """End every session of ``user_id``; return how many were ended."""
        result: int = await self._run(
            "invalidate_user_sessions", self._operations.invalidate_user(user_id)
        )
        return result

    async def get_user_sessions(self, user_id: str) -> list[Session]:
        """List the active and idle sessions of ``user_id``, oldest first."""
        result: list[Session] = await self._run(
            "get_user_sessions", self._operations.user_sessions(user_id)
        )
        return result

    async def _run(self, operation: str, steps: Operation) -> Any:
        try:
            call = next(steps)
            while True:
                reply = await self._execute(operation, call)
                call = steps.send(reply)
        except StopIteration as stop:
            return stop.value

    async def _execute(self, operation: str, call: Call) -> Any:
        try:
            try:
                reply = await self._send(call)
            except RedisConnectionError:
                # As in the sync store: one more attempt on a fresh connection.
                reply = await self._send(call)
        except RedisError as error:
            raise self._unavailable(operation, error) from error
        if self._outage.failing:
            self._outage.success()
        return reply

    async def _send(self, call: Call) -> Any:
        if isinstance(call, Command):
            return await self.client.execute_command(*call.args)
        script = call.script
        try:
            return await self.client.execute_command(
                "EVALSHA", script.sha, len(call.keys), *call.keys, *call.args
            )
        except NoScriptError:
            return await self.client.execute_command(
                "EVAL", script.source, len(call.keys), *call.keys, *call.args
            )
