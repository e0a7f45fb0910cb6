"""Session reads of concurrent requests, sent to Redis together.

Under load, an ASGI server starts many requests in one pass of its event loop,
and each of them reads its session with one GET. :class:`ReadBatcher` sends
the GETs of one pass as one non-transactional pipeline: one connection taken
from the pool, one write and one wait for the replies, instead of one of each
per request. Every request still sends its own GET and gets its own reply. A
read sends its GET a second time only when the request that led its batch is
cancelled before the replies arrive.

Under light load, each read goes out at once as a plain GET. Once
:data:`MIN_READS_TO_BATCH` reads are in flight, the next read that starts
leads a batch. It yields to the event loop once, so that the requests already
scheduled in that pass add their keys, then sends the batch and hands each
request its reply. A read that no other read joins goes out as a plain GET.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .operations import READ_COMMAND

__all__ = ["MIN_READS_TO_BATCH", "ReadBatcher"]

#: Reads in flight, the new one included, from which a read waits one pass to
#: lead a batch. With fewer, each read goes out at once as a plain GET. At 4
#: connections to one uvicorn worker, batches of two or three reads took about
#: 9 % more server CPU per request than plain GETs. The benchmarks' comparison
#: suite with ``--connections 4`` measured it.
MIN_READS_TO_BATCH = 5


class _Resend(Exception):
    """Signal to a waiting read that its batch was never sent, so it sends again."""


class ReadBatcher:
    """Batch the session reads that start in one event-loop pass.

    ``client`` is a ``redis.asyncio.Redis``. A batch goes out through its
    ``pipeline(transaction=False)``, so the client's connection pool, retry
    settings and instrumentation apply as they do to any pipeline.
    """

    __slots__ = ("_client", "_in_flight", "_loop", "_waiting")

    def __init__(self, client: Any) -> None:
        self._client = client
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[str, asyncio.Future[Any]]] | None = None

    def __repr__(self) -> str:
        return (
            f"ReadBatcher(in_flight={self._in_flight}, "
            f"collecting={self._waiting is not None})"
        )

    async def get(self, key: str) -> Any:
        """Return the reply to ``GET key``, or raise the client's error."""
        self._in_flight += 1
        try:
            while True:
                waiting = self._waiting
                if waiting is not None:
                    loop = asyncio.get_running_loop()
                    if self._loop is loop:
                        future: asyncio.Future[Any] = loop.create_future()
                        waiting.append((key, future))
                        try:
                            return await future
                        except _Resend:
                            continue
                if self._in_flight < MIN_READS_TO_BATCH:
                    return await self._client.execute_command(READ_COMMAND, key)
                return await self._lead(key)
        finally:
            self._in_flight -= 1

    async def _lead(self, key: str) -> Any:
        waiting: list[tuple[str, asyncio.Future[Any]]] = []
        self._loop, self._waiting = asyncio.get_running_loop(), waiting
        try:
            # One pass: each request that the loop already scheduled runs up to
            # its own read and joins this batch.
            await asyncio.sleep(0)
        except BaseException:
            self._stop_collecting(waiting)
            _hand_over(waiting, _Resend())
            raise
        self._stop_collecting(waiting)
        if not waiting:
            return await self._client.execute_command(READ_COMMAND, key)
        return await self._send(key, waiting)

    def _stop_collecting(self, waiting: list[tuple[str, asyncio.Future[Any]]]) -> None:
        if self._waiting is waiting:
            self._loop, self._waiting = None, None

    async def _send(
        self, key: str, waiting: list[tuple[str, asyncio.Future[Any]]]
    ) -> Any:
        pipeline = self._client.pipeline(transaction=False)
        pipeline.execute_command(READ_COMMAND, key)
        for other_key, _ in waiting:
            pipeline.execute_command(READ_COMMAND, other_key)

        try:
            # raise_on_error=False returns an error reply in the list, so each
            # request gets its own reply or error.
            replies = await pipeline.execute(raise_on_error=False)
        except Exception as error:
            # The batch failed as a whole, on a lost connection for example,
            # so every request in it gets the same error. Its traceback goes,
            # because the pipeline's frame lists the replies read before.
            error.with_traceback(None)
            _hand_over(waiting, error)
            raise
        except BaseException:
            # The leading request was cancelled. The others were not, so each
            # sends its read again.
            _hand_over(waiting, _Resend())
            raise

        for (_, future), reply in zip(waiting, replies[1:], strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                # Without its traceback, whose pipeline frame lists every reply.
                future.set_exception(reply.with_traceback(None))
            else:
                future.set_result(reply)

        own = replies[0]
        # A traceback that an error tracker records keeps these frames' local
        # variables, so they must not reference other requests' records.
        del replies
        waiting.clear()
        if isinstance(own, Exception):
            raise own.with_traceback(None)
        return own


def _hand_over(
    waiting: list[tuple[str, asyncio.Future[Any]]], error: BaseException
) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_exception(error)
