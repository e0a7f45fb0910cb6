"""Store construction and demo accounts shared by the example apps.

Every example reads the Redis URL from ``BEARER_MW_REDIS_URL``. Without it, the
example runs on fakeredis, an in-process Redis stand-in, so it starts with no
server at all. Sessions then last only as long as the process.
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

import fakeredis
import redis
import redis.asyncio

from bearer_mw import AsyncSessionStore, SessionStore

__all__ = [
    "DEMO_ACCOUNTS",
    "REDIS_URL_VARIABLE",
    "DemoAccount",
    "async_store",
    "check_password",
    "redis_url_from_environment",
    "sync_store",
]

#: Environment variable that contains the Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
REDIS_URL_VARIABLE = "BEARER_MW_REDIS_URL"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """A demo user: a password and the scopes its sessions get."""

    password: str
    scopes: tuple[str, ...]


#: Accounts the login routes accept. A real app checks credentials against its
#: own user database instead.
DEMO_ACCOUNTS: Mapping[str, DemoAccount] = {
    "alice": DemoAccount("wonderland", ("reports:read",)),
    "bob": DemoAccount("builder", ()),
}


def check_password(username: object, password: object) -> list[str] | None:
    """Return the scopes of a demo account, or None if the credentials are wrong."""
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    account = DEMO_ACCOUNTS.get(username)
    if account is None:
        return None
    if not hmac.compare_digest(account.password.encode(), password.encode()):
        return None
    return list(account.scopes)


def redis_url_from_environment() -> str | None:
    """Return the Redis URL from ``BEARER_MW_REDIS_URL``, or None if unset."""
    return os.environ.get(REDIS_URL_VARIABLE) or None


def sync_store(redis_url: str | None) -> SessionStore:
    """Build a store on ``redis_url``, or on fakeredis when it is None."""
    if redis_url is not None:
        return SessionStore(redis.Redis.from_url(redis_url))
    return SessionStore(fakeredis.FakeRedis(server=_fake_server()))


def async_store(redis_url: str | None) -> AsyncSessionStore:
    """Build an asyncio store on ``redis_url``, or on fakeredis when it is None."""
    if redis_url is not None:
        return AsyncSessionStore(redis.asyncio.Redis.from_url(redis_url))
    return AsyncSessionStore(fakeredis.FakeAsyncRedis(server=_fake_server()))


@functools.cache
def _fake_server() -> fakeredis.FakeServer:
    # One fake server per process, so that sync and async stores built without
    # a URL see the same sessions, as they would on one Redis.
    return fakeredis.FakeServer()
