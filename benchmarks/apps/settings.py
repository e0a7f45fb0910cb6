"""Settings and helpers that every app variant shares."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

APP_ID_ENV = "BENCH_APP"
REDIS_URL_ENV = "BENCH_REDIS_URL"

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
