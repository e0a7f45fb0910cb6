"""AsyncRequestAuth: one shared lookup per request, cancellation and failures."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from bearer_mw import StoreUnavailableError
from bearer_mw.request_auth import AsyncRequestAuth
from bearer_mw.session import Session

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SESSION = Session(
    session_id="digest",
    user_id="ada",
    attributes={},
    created=0,
    active_expires=10**13,
    idle_expires=10**13 + 1,
    state="active",
)


class GatedStore:
    """A store whose lookups wait for a gate. It counts calls and their tasks."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.fail_next = False

    async def find_session(self, token: str) -> Session | None:
        self.calls += 1
        self.tasks.append(asyncio.current_task())
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise StoreUnavailableError("redis unavailable", operation="find_session")
        return SESSION


def auth_for(store: GatedStore) -> AsyncRequestAuth:
    return AsyncRequestAuth(store, "token")  # type: ignore[arg-type]


async def owner_and_waiter(
    auth: AsyncRequestAuth,
) -> tuple[asyncio.Future[Session | None], asyncio.Future[Session | None]]:
    """Start a lookup, then a second one that waits for the first."""
    owner = asyncio.ensure_future(auth.lookup())
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(auth.lookup())
    await asyncio.sleep(0)
    return owner, waiter


async def test_async_request_auth_lookup_runs_in_caller_task() -> None:
    store = GatedStore()
    store.gate.set()
    auth = auth_for(store)

    session = await auth.validate()

    assert session is SESSION
    assert store.tasks == [asyncio.current_task()]


async def test_async_request_auth_concurrent_callers_share_one_lookup() -> None:
    store = GatedStore()
    auth = auth_for(store)

    waiting = [asyncio.ensure_future(auth.lookup()) for _ in range(5)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*waiting)

    assert store.calls == 1
    assert all(result is SESSION for result in results)


async def test_async_request_auth_owner_cancelled_waiter_takes_over() -> None:
    store = GatedStore()
    auth = auth_for(store)
    owner, waiter = await owner_and_waiter(auth)

    owner.cancel()
    await asyncio.sleep(0)
    store.gate.set()
    session = await waiter

    assert owner.cancelled()
    assert session is SESSION
    assert store.calls == 2


async def test_async_request_auth_waiter_cancelled_lookup_continues() -> None:
    store = GatedStore()
    auth = auth_for(store)
    owner, waiter = await owner_and_waiter(auth)

    waiter.cancel()
    await asyncio.sleep(0)
    store.gate.set()

    assert await owner is SESSION
    assert waiter.cancelled()
    assert store.calls == 1


async def test_async_request_auth_both_cancelled_no_new_lookup() -> None:
    store = GatedStore()
    auth = auth_for(store)
    owner, waiter = await owner_and_waiter(auth)

    owner.cancel()
    waiter.cancel()
    outcomes = await asyncio.gather(owner, waiter, return_exceptions=True)

    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert store.calls == 1


async def test_async_request_auth_reentrant_lookup_raises() -> None:
    auth: AsyncRequestAuth

    class ReentrantStore(GatedStore):
        async def find_session(self, token: str) -> Session | None:
            return await auth.lookup()

    auth = auth_for(ReentrantStore())

    with pytest.raises(RuntimeError, match="from inside the session lookup"):
        await asyncio.wait_for(auth.lookup(), timeout=2)


async def test_async_request_auth_other_loop_raises() -> None:
    store = GatedStore()
    auth = auth_for(store)
    owner = asyncio.ensure_future(auth.lookup())
    await asyncio.sleep(0)

    def look_up_in_new_loop() -> None:
        asyncio.run(auth.lookup())

    with pytest.raises(RuntimeError, match="another event loop"):
        await asyncio.to_thread(look_up_in_new_loop)
    store.gate.set()
    assert await owner is SESSION


async def test_async_request_auth_failure_not_cached() -> None:
    store = GatedStore()
    store.fail_next = True
    auth = auth_for(store)
    owner, waiter = await owner_and_waiter(auth)
    store.gate.set()

    outcomes = await asyncio.gather(owner, waiter, return_exceptions=True)
    retried = await auth.lookup()

    assert all(isinstance(outcome, StoreUnavailableError) for outcome in outcomes)
    assert retried is SESSION
    assert store.calls == 2


async def test_async_request_auth_unshared_failure_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = GatedStore()
    store.fail_next = True
    store.gate.set()
    auth = auth_for(store)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        with pytest.raises(StoreUnavailableError):
            await auth.lookup()
        del auth
        gc.collect()

    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
