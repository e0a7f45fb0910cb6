"""Per-request access to the session behind the request's bearer token.

The middleware puts one of these objects in the WSGI environ or the ASGI
scope under ``bearer_mw.auth``. The session lookup runs at most once per
request: the first caller performs it, concurrent callers wait for that
result, and later callers read the cached value. A failed lookup is not
cached, so the next caller tries again.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .async_store import AsyncSessionStore
from .errors import InvalidSessionError
from .session import Session
from .store import SessionStore

__all__ = ["AsyncRequestAuth", "RequestAuth"]

_UNSET: Any = object()


class _Token:
    """Holds the request's token and keeps it out of reprs."""

    __slots__ = ()
    _token: str | None

    @property
    def token(self) -> str | None:
        """The bearer token of the request, or None when it sent none."""
        return self._token

    def __repr__(self) -> str:
        shown = "None" if self._token is None else "<hidden>"
        return f"{type(self).__name__}(token={shown})"


class RequestAuth(_Token):
    """Session access for one WSGI request; safe to share between threads."""

    __slots__ = ("_lock", "_session", "_store", "_token")

    def __init__(self, store: SessionStore, token: str | None) -> None:
        self._store = store
        self._token = token
        self._lock = threading.Lock()
        self._session: Session | None = _UNSET

    def _remember(self, session: Session | None) -> None:
        # The middleware's eager lookup, made before the app can see this object.
        self._session = session

    def lookup(self) -> Session | None:
        """Return the active or idle session, looking it up on first use.

        Raises :class:`~bearer_mw.StoreUnavailableError` when Redis fails.
        """
        session = self._session
        if session is not _UNSET:
            return session
        with self._lock:
            if self._session is _UNSET:
                if self._token is None:
                    self._session = None
                else:
                    self._session = self._store.find_session(self._token)
            return self._session

    def validate(self) -> Session | None:
        """Return the session if it is active, else None."""
        session = self.lookup()
        return session if session is not None and session.state == "active" else None

    def get_session(self) -> Session:
        """Return the active or idle session, or raise InvalidSessionError."""
        session = self.lookup()
        if session is None:
            raise InvalidSessionError("no active or idle session for this request")
        return session

    def renew(self) -> tuple[str, Session] | None:
        """Rotate the request's token; see :meth:`SessionStore.renew_session`."""
        if self._token is None:
            return None
        result = self._store.renew_session(self._token)
        self._session = None
        return result

    def invalidate(self) -> bool:
        """End the request's session; return whether one existed."""
        if self._token is None:
            return False
        removed = self._store.invalidate_session(self._token)
        self._session = None
        return removed


class AsyncRequestAuth(_Token):
    """Session access for one ASGI connection; awaitable, cached and shared.

    The first caller runs the lookup in its own task, and concurrent callers
    wait for its outcome. No task is spawned: a task per request made waits
    for a pooled Redis connection unfair under load, so a few requests waited
    seconds while most waited milliseconds.
    """

    __slots__ = ("_pending", "_runner", "_session", "_store", "_token")

    def __init__(self, store: AsyncSessionStore, token: str | None) -> None:
        self._store = store
        self._token = token
        self._session: Session | None = _UNSET
        self._pending: asyncio.Future[Session | None] | None = None
        self._runner: asyncio.Task[Any] | None = None

    def _remember(self, session: Session | None) -> None:
        self._session = session

    async def lookup(self) -> Session | None:
        """Return the active or idle session, looking it up on first use.

        Concurrent awaits share one lookup. If the caller that runs it is
        cancelled, the lookup stops with it and a caller still waiting starts
        it again. Cancelling a waiting caller leaves the lookup running.
        """
        while True:
            if self._session is not _UNSET:
                return self._session
            if self._token is None:
                self._session = None
                return None
            pending = self._pending
            if pending is None:
                return await self._run_lookup(self._token)
            self._check_waiter(pending)
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # Only the caller running the lookup was cancelled: take over.

    def _check_waiter(self, pending: asyncio.Future[Session | None]) -> None:
        """Raise RuntimeError for a wait that could never end or never work."""
        if pending.get_loop() is not asyncio.get_running_loop():
            raise RuntimeError(
                "the session lookup of this request is running in another event "
                "loop; use the request's auth object only in the loop that serves it"
            )
        if asyncio.current_task() is self._runner:
            raise RuntimeError(
                "lookup() was called from inside the session lookup it would wait for"
            )

    async def _run_lookup(self, token: str) -> Session | None:
        pending = asyncio.get_running_loop().create_future()
        self._pending = pending
        self._runner = asyncio.current_task()
        try:
            session = await self._store.find_session(token)
        except Exception as error:
            pending.set_exception(error)
            # Mark the exception as seen, so asyncio does not log it when no
            # other caller waited for this lookup.
            pending.exception()
            raise
        except BaseException:
            pending.cancel()
            raise
        finally:
            self._pending = None
            self._runner = None
        if self._session is _UNSET:
            self._session = session
        pending.set_result(session)
        return session

    async def validate(self) -> Session | None:
        """Return the session if it is active, else None."""
        session = await self.lookup()
        return session if session is not None and session.state == "active" else None

    async def get_session(self) -> Session:
        """Return the active or idle session, or raise InvalidSessionError."""
        session = await self.lookup()
        if session is None:
            raise InvalidSessionError("no active or idle session for this request")
        return session

    async def renew(self) -> tuple[str, Session] | None:
        """Rotate the request's token; see :meth:`AsyncSessionStore.renew_session`."""
        if self._token is None:
            return None
        result = await self._store.renew_session(self._token)
        self._session = None
        return result

    async def invalidate(self) -> bool:
        """End the request's session; return whether one existed."""
        if self._token is None:
            return False
        removed = await self._store.invalidate_session(self._token)
        self._session = None
        return removed
