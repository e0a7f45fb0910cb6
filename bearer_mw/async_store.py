"""The asyncio session store, a thin driver over :mod:`bearer_mw.operations`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
from redis.asyncio.cluster import PipelineCommand

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
from .read_batch import ReadBatcher
from .session import Session

__all__ = ["AsyncSessionStore"]


class AsyncSessionStore(BaseStore):
    """Sessions in Redis behind bearer tokens, over an asyncio client.

    ``client`` is a ``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster``
    or a Sentinel-managed asyncio client. Methods and semantics match
    :class:`~bearer_mw.SessionStore`, awaited.

    ``batch_reads`` (on by default) sends the session reads that concurrent
    requests start in one pass of the event loop as one pipeline once several
    reads are in flight, which saves server CPU under load
    (:mod:`bearer_mw.read_batch`). Each request still sends its own GET. Reads
    on a Redis Cluster client are never batched.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster | Any,
        *,
        batch_reads: bool = True,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        self._batch_reads = batch_reads
        self.client = client

    @property
    def client(self) -> Any:
        """The Redis client. Replacing it also sends later batches to the new one."""
        return self._client

    @client.setter
    def client(self, client: Any) -> None:
        self._client = client
        self._batcher = (
            ReadBatcher(client) if _can_batch(client, self._batch_reads) else None
        )

    @property
    def batch_reads(self) -> bool:
        """Whether concurrent session reads go out in batches, as constructed."""
        return self._batch_reads

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
        operations = self._operations
        named = operations.lookup_key(token)
        if named is None:
            return None
        digest, key = named
        # _guarded written out, because awaiting it would add a coroutine to
        # every request.
        batcher = self._batcher
        try:
            try:
                if batcher is None:
                    reply = await self.client.execute_command(READ_COMMAND, key)
                else:
                    reply = await batcher.get(key)
            except RedisConnectionError:
                # The retry goes out alone: when a batch lost its connection,
                # each of its reads tries once more on a connection of its own.
                reply = await self.client.execute_command(READ_COMMAND, key)
        except STORE_ERRORS as error:
            raise self._unavailable("find_session", error) from error
        if self._outage.failing:
            self._outage.success("find_session")
        return operations.found(digest, reply)

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
        if isinstance(call, Command):
            return await self._guarded(
                operation, self.client.execute_command, call.args
            )
        return await self._guarded(operation, self._send_script, (call,))

    async def _guarded(
        self, operation: str, send: Callable[..., Any], args: tuple[Any, ...]
    ) -> Any:
        """Run ``send(*args)``, once more on a connection error, and map errors."""
        try:
            try:
                reply = await send(*args)
            except RedisConnectionError:
                # As in the sync store: one more attempt on a fresh connection.
                reply = await send(*args)
        except STORE_ERRORS as error:
            raise self._unavailable(operation, error) from error
        if self._outage.failing:
            self._outage.success(operation)
        return reply

    async def _send_script(self, call: ScriptCall) -> Any:
        if self.wait_replicas:
            return await self._send_and_wait(call)
        script = call.script
        try:
            return await self.client.execute_command(
                "EVALSHA", script.sha, len(call.keys), *call.keys, *call.args
            )
        except NoScriptError:
            return await self.client.execute_command(
                "EVAL", script.source, len(call.keys), *call.keys, *call.args
            )

    async def _send_and_wait(self, call: ScriptCall) -> Any:
        # As in the sync store: the script and WAIT share one connection.
        client = self.client
        if not isinstance(client, redis.asyncio.cluster.RedisCluster):
            return await self._pipeline_and_wait(client, call)

        try:
            return await self._node_pipeline_and_wait(client, call)
        except (*REDIRECTIONS, RedisConnectionError):
            # The slot moved, or its primary failed: reload the slot map and
            # try once more on the primary it names now.
            await client.nodes_manager.initialize()
            return await self._node_pipeline_and_wait(client, call)

    async def _pipeline_and_wait(
        self, client: redis.asyncio.Redis, call: ScriptCall
    ) -> Any:
        for script_args in script_commands(call):
            async with client.pipeline(transaction=False) as pipe:
                pipe.execute_command(*script_args)
                pipe.execute_command(*self._wait_command())
                reply, acknowledged = await pipe.execute(raise_on_error=False)
            if not isinstance(reply, NoScriptError):
                break
        return self._checked_reply(reply, acknowledged)

    async def _node_pipeline_and_wait(
        self, client: redis.asyncio.cluster.RedisCluster, call: ScriptCall
    ) -> Any:
        # A cluster pipeline would route WAIT, which has no key, to every
        # primary. ClusterNode.execute_pipeline sends a batch on one
        # connection to one node, the primary of the keys' slot.
        await client.initialize()
        node = client.get_node_from_key(call.keys[0])
        if node is None:
            # Treated like a lost node: the caller reloads the slot map.
            raise RedisConnectionError(
                f"no primary serves the slot of the {call.script.name} script keys"
            )
        for script_args in script_commands(call):
            commands = [
                PipelineCommand(0, *script_args),
                PipelineCommand(1, *self._wait_command()),
            ]
            await node.execute_pipeline(commands)
            reply, acknowledged = (command.result for command in commands)
            if not isinstance(reply, NoScriptError):
                break
        return self._checked_reply(reply, acknowledged)


def _can_batch(client: Any, batch_reads: bool) -> bool:
    """Tell whether the session reads on ``client`` can go out in batches."""
    # NOTE: reads on a Redis Cluster client go out one by one. A cluster
    # pipeline splits a batch by node, and one failing node would fail the
    # reads that other nodes served.
    return (
        batch_reads
        and not isinstance(client, redis.asyncio.cluster.RedisCluster)
        and callable(getattr(client, "pipeline", None))
    )
