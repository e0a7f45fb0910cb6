"""Settings and helpers that every app variant shares."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from redis._parsers import _AsyncRESP2Parser, _RESP2Parser

from bearer_mw import redis_from_url
from bearer_mw.client import DEFAULT_MAX_CONNECTIONS

APP_ID_ENV = "BENCH_APP"
REDIS_URL_ENV = "BENCH_REDIS_URL"
CLIENT_ENV = "BENCH_CLIENT"

# Key prefixes of the hand-written and peer token schemes. fastapi-users chooses
# its own prefix, so that scheme uses the RedisStrategy default.
RAW_PREFIX = "bench:raw:"
STARLETTE_PREFIX = "bench:starlette:"
FLASK_PREFIX = "bench:flask:"
FASTAPI_USERS_PREFIX = "fastapi_users_token:"

# Seeded fastapi-users tokens map to uuid5(USER_NAMESPACE, user id string).
USER_NAMESPACE = uuid.UUID("6f1d9b43-1c55-4b8e-9a5f-2c3e0f7d8a10")

# The user id that apps without authentication return. It is as long as a seeded
# user id, so every variant sends a response body of the same size.
ANONYMOUS_USER_ID = "user-000000"


def app_id() -> str:
    value = os.environ.get(APP_ID_ENV)
    if not value:
        raise RuntimeError(f"{APP_ID_ENV} is not set; start apps through the harness")
    return value


def user_uuid(user_id: str) -> uuid.UUID:
    return uuid.uuid5(USER_NAMESPACE, user_id)


def redis_url() -> str:
    value = os.environ.get(REDIS_URL_ENV)
    if not value:
        raise RuntimeError(
            f"{REDIS_URL_ENV} is not set; start apps through the harness"
        )
    return value


def user_body(user_id: str | None) -> bytes:
    return json.dumps({"user_id": user_id}, separators=(",", ":")).encode()


def pack_record(user_id: str, scopes: list[str], created_at: float) -> bytes:
    """Pack the session record that the raw and peer schemes keep in one string key."""
    record = {"user_id": user_id, "scopes": scopes, "created_at": created_at}
    return json.dumps(record, separators=(",", ":")).encode()


def unpack_record(data: bytes | str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(data)
    return record


def bearer_credentials(header_value: str) -> str | None:
    """Return the token of a ``Bearer`` header value, parsed by hand for raw-get."""
    scheme, _, token = header_value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token


@dataclass(frozen=True)
class ClientChoice:
    """The Redis client settings of an app, chosen with BENCH_CLIENT.

    ``redis_py_default`` builds the client with redis-py's own ``from_url``,
    whose ConnectionPool (redis-py 8.2) holds up to 100 connections and raises
    MaxConnectionsError beyond that instead of waiting. Otherwise the app calls
    ``bearer_mw.redis_from_url`` with ``max_connections``, which bounds the pool
    and makes a caller wait for a free connection for up to the 2 s timeout.
    ``python_parser`` replaces hiredis with redis-py's pure-Python parser.
    """

    name: str
    description: str
    redis_py_default: bool = False
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    python_parser: bool = False


DEFAULT_CLIENT = "default"
CLIENT_CHOICES = {
    choice.name: choice
    for choice in [
        ClientChoice(
            DEFAULT_CLIENT, f"redis_from_url, max_connections {DEFAULT_MAX_CONNECTIONS}"
        ),
        ClientChoice(
            "redis-py-default",
            "redis-py from_url defaults: non-blocking pool, redis-py retries",
            redis_py_default=True,
        ),
        ClientChoice(
            "max-16", "redis_from_url, max_connections 16", max_connections=16
        ),
        ClientChoice(
            "max-256", "redis_from_url, max_connections 256", max_connections=256
        ),
        ClientChoice(
            "python-parser",
            f"redis_from_url, max_connections {DEFAULT_MAX_CONNECTIONS}, pure-Python "
            "parser, no hiredis",
            python_parser=True,
        ),
    ]
}


def client_choice() -> ClientChoice:
    name = os.environ.get(CLIENT_ENV) or DEFAULT_CLIENT
    choice = CLIENT_CHOICES.get(name)
    if choice is None:
        known = ", ".join(CLIENT_CHOICES)
        raise RuntimeError(f"invalid {CLIENT_ENV} {name!r}; choose from {known}")
    return choice


def build_sync_client(**options: Any) -> redis.Redis:
    """Build the sync client that BENCH_CLIENT names for BENCH_REDIS_URL.

    ``options`` are extra connection options, such as ``decode_responses``.
    """
    choice = client_choice()
    if choice.redis_py_default:
        sync_client: redis.Redis = redis.Redis.from_url(redis_url(), **options)
        return sync_client
    if choice.python_parser:
        options["parser_class"] = _RESP2Parser
    client: redis.Redis = redis_from_url(
        redis_url(), max_connections=choice.max_connections, **options
    )
    return client


def build_async_client(**options: Any) -> redis.asyncio.Redis:
    """Build the asyncio client that BENCH_CLIENT names for BENCH_REDIS_URL."""
    choice = client_choice()
    if choice.redis_py_default:
        async_client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            redis_url(), **options
        )
        return async_client
    if choice.python_parser:
        # NOTE: redis-py has no public switch for the parser, so this passes
        # the private _parsers class, which redis-py 8.2 swaps for its RESP3
        # twin when the connection speaks RESP3.
        options["parser_class"] = _AsyncRESP2Parser
    client: redis.asyncio.Redis = redis_from_url(
        redis_url(), asyncio=True, max_connections=choice.max_connections, **options
    )
    return client
