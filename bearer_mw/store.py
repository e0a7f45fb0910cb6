"""The synchronous session store, a thin driver over :mod:`bearer_mw.operations`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
import redis.cluster

from ._base_store import (
    REDIRECTIONS,
    STORE_ERRORS,
    BaseStore,
    NoScriptError,
    RedisConnectionError,
    script_commands,
)
from .errors import InvalidSessionError
from .operations import READ_COMMAND, Call, Command, Operation, ScriptCall
from .session import Session

__all__ = ["SessionStore"]

T = TypeVar("T")


class SessionStore(BaseStore):
    """Sessions in Redis behind bearer tokens, over a synchronous client.

    ``client`` is a ``redis.Redis``, ``redis.cluster.RedisCluster`` or a
    Sentinel-managed ``redis.Redis``, as built by ``Sentinel.master_for``. See
    :class:`~bearer_mw._base_store.BaseStore` for the settings.
    Every method raises :class:`~bearer_mw.StoreUnavailableError` when Redis
    cannot be reached; a read that fails on a broken connection is retried
    once on a fresh one first.
    """

    def __init__(
        self, client: redis.Redis | redis.cluster.RedisCluster | Any, **settings: Any
    ) -> None:
        super().__init__(**settings)
        self.client = client

    def __repr__(self) -> str:
        return f"SessionStore(key_prefix={self.key_prefix!r})"

    def create_session(
        self, user_id: str, attributes: Mapping[str, Any] | None = None
    ) -> tuple[str, Session]:
        """Start a session for ``user_id``; return its token and value.

        The token is returned only here and by :meth:`renew_session`.
        """
        result: tuple[str, Session] = self._run(
            "create_session", self._operations.create(user_id, attributes)
        )
        return result

    def find_session(self, token: str) -> Session | None:
        """Return the active or idle session of ``token``, or None."""
        operations = self._operations
        named = operations.lookup_key(token)
        if named is None:
            return None
        digest, key = named
        reply = self._guarded(
            "find_session", self.client.execute_command, (READ_COMMAND, key)
        )
        return operations.found(digest, reply)

    def get_session(self, token: str) -> Session:
        """Return the active or idle session of ``token``.

        Raises :class:`~bearer_mw.InvalidSessionError` when the token is
        unknown, dead or malformed. Nothing is extended.
        """
        session = self.find_session(token)
        if session is None:
            raise InvalidSessionError("no active or idle session for this token")
        return session

    def validate_session(self, token: str) -> Session | None:
        """Return the session of ``token`` if it is active, else None."""
        session = self.find_session(token)
        if session is None or session.state != "active":
            return None
        return session

    def renew_session(self, token: str) -> tuple[str, Session] | None:
        """Replace an active or idle session's token with a new one.

        The successor has fresh periods, the same user and attributes, and the
        old token stops working, in one atomic round trip. Returns None when
        the session is dead or unknown.
        """
        result: tuple[str, Session] | None = self._run(
            "renew_session", self._operations.renew(token)
        )
        return result

    def invalidate_session(self, token: str) -> bool:
        """End the session of ``token``; return whether one existed."""
        result: bool = self._run(
            "invalidate_session", self._operations.invalidate(token)
        )
        return result

    def invalidate_user_sessions(self, user_id: str) -> int:
        """End every session of ``user_id``; return how many were ended."""
        result: int = self._run(
            "invalidate_user_sessions", self._operations.invalidate_user(user_id)
        )
        return result

    def get_user_sessions(self, user_id: str) -> list[Session]:
        """List the active and idle sessions of ``user_id``, oldest first."""
        result: list[Session] = self._run(
            "get_user_sessions", self._operations.user_sessions(user_id)
        )
        return result

    def _run(self, operation: str, steps: Operation) -> Any:
        try:
            call = next(steps)
            while True:
                reply = self._execute(operation, call)
                call = steps.send(reply)
        except StopIteration as stop:
            return stop.value

    def _execute(self, operation: str, call: Call) -> Any:
        if isinstance(call, Command):
            return self._guarded(operation, self.client.execute_command, call.args)
        return self._guarded(operation, self._send_script, (call,))

    def _guarded(
        self, operation: str, send: Callable[..., Any], args: tuple[Any, ...]
    ) -> Any:
        """Run ``send(*args)``, once more on a connection error, and map errors."""
        try:
            try:
                reply = send(*args)
            except RedisConnectionError:
                # The pool dropped the broken connection, so this attempt runs
                # on a fresh one. Every call is safe to repeat: a repeated
                # renewal finds the renewed record and returns the same
                # successor, except with renewal_grace set to zero.
                # NOTE: redis-py also raises ConnectionError when a blocking
                # pool's wait for a free connection times out, so that wait is
                # repeated too, and the longest wait before a 503 is two pool
                # timeouts.
                reply = send(*args)
        except STORE_ERRORS as error:
            raise self._unavailable(operation, error) from error
        if self._outage.failing:
            self._outage.success(operation)
        return reply

    def _send_script(self, call: ScriptCall) -> Any:
        if self.wait_replicas:
            return self._send_and_wait(call)
        script = call.script
        try:
            return self.client.execute_command(
                "EVALSHA", script.sha, len(call.keys), *call.keys, *call.args
            )
        except NoScriptError:
            return self.client.execute_command(
                "EVAL", script.source, len(call.keys), *call.keys, *call.args
            )

    def _send_and_wait(self, call: ScriptCall) -> Any:
        # Every script call writes. WAIT counts the replicas that acknowledged
        # the writes made on its own connection, so the script and WAIT go out
        # in one pipeline, which uses a single connection to one server.
        client = self.client
        if not isinstance(client, redis.cluster.RedisCluster):
            return self._pipeline_and_wait(client, call)

        # A cluster pipeline would route WAIT, which has no key, to every
        # primary, so the pipeline runs on the client of the slot's primary.
        try:
            return self._pipeline_and_wait(self._primary_for(call), call)
        except (*REDIRECTIONS, RedisConnectionError):
            # The slot moved, or its primary failed: reload the slot map and
            # try once more on the primary it names now.
            client.nodes_manager.initialize()
            return self._pipeline_and_wait(self._primary_for(call), call)

    def _primary_for(self, call: ScriptCall) -> Any:
        client: Any = self.client
        node = client.get_node_from_key(call.keys[0])
        return client.get_redis_connection(node)

    def _pipeline_and_wait(self, client: Any, call: ScriptCall) -> Any:
        for script_args in script_commands(call):
            with client.pipeline(transaction=False) as pipe:
                pipe.execute_command(*script_args)
                pipe.execute_command(*self._wait_command())
                reply, acknowledged = pipe.execute(raise_on_error=False)
            if not isinstance(reply, NoScriptError):
                break
        return self._checked_reply(reply, acknowledged)
