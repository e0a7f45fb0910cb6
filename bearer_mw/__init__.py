"""Bearer tokens backed by server-side sessions in Redis, for WSGI and ASGI."""

from __future__ import annotations

from .asgi import AsyncBearerMiddleware
from .async_store import AsyncSessionStore
from .client import redis_from_url
from .errors import (
    BearerMWError,
    ConfigurationError,
    InvalidSessionError,
    StoreUnavailableError,
)
from .header import read_bearer_token
from .rules import Rule
from .session import Session, SessionState
from .store import SessionStore
from .wsgi import BearerMiddleware

__all__ = [
    "AsyncBearerMiddleware",
    "AsyncSessionStore",
    "BearerMWError",
    "BearerMiddleware",
    "ConfigurationError",
    "InvalidSessionError",
    "Rule",
    "Session",
    "SessionState",
    "SessionStore",
    "StoreUnavailableError",
    "read_bearer_token",
    "redis_from_url",
]
