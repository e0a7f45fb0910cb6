"""Which Redis connection errors the stores retry once, and which they do not."""

from __future__ import annotations

import queue

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from bearer_mw import SessionStore, StoreUnavailableError
from bearer_mw._base_store import worth_retrying


def error_with_context(context: BaseException) -> RedisConnectionError:
    try:
        try:
            raise context
        except BaseException:
            raise RedisConnectionError("No connection available.") from None
    except RedisConnectionError as error:
        return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            error_with_context(ConnectionResetError()), True, id="connection-reset"
        ),
        pytest.param(
            error_with_context(ConnectionRefusedError()), True, id="connection-refused"
        ),
        pytest.param(RedisConnectionError("closed by server"), True, id="no-context"),
        pytest.param(error_with_context(TimeoutError()), False, id="async-pool-wait"),
        pytest.param(error_with_context(queue.Empty()), False, id="sync-pool-wait"),
        pytest.param(MaxConnectionsError("too many"), False, id="pool-full"),
    ],
)
def test_worth_retrying(error: RedisConnectionError, expected: bool) -> None:
    assert worth_retrying(error) is expected


class CountingPool(redis.BlockingConnectionPool):
    """A blocking pool that counts how often a caller asks it for a connection."""

    requests = 0

    def get_connection(self, *args: object, **kwargs: object) -> redis.Connection:
        self.requests += 1
        return super().get_connection(*args, **kwargs)  # type: ignore[no-any-return]


def test_store_does_not_retry_pool_wait(redis_url: str) -> None:
    pool = CountingPool.from_url(redis_url, max_connections=1, timeout=0.2)
    client = redis.Redis.from_pool(pool)
    store = SessionStore(client)
    token, _ = store.create_session("alice")
    held = pool.get_connection()
    pool.requests = 0
    try:
        with pytest.raises(StoreUnavailableError):
            store.find_session(token)
    finally:
        pool.release(held)

    assert pool.requests == 1
    assert store.find_session(token) is not None
    client.close()
