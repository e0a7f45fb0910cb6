"""Seed sessions for every token scheme and write the header files the load uses.

bearer_mw sessions are created through ``SessionStore.create_session`` only. To
seed a million of them quickly, the store is given a redis-py pipeline in place
of the client, so a batch of creations costs one round trip. A probe checks first
that sessions created this way validate through a normal store. If they do not,
seeding falls back to direct calls from a thread pool.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from benchmarks.apps import settings
from benchmarks.apps.fastapi_users_peer import user_uuid
from benchmarks.variants import TokenKind, TokenScheme

logger = logging.getLogger(__name__)

# Tokens that the load generator cycles through, whatever the number seeded.
SAMPLE_SIZE = 1000
SESSIONS_PER_USER = 2
BATCH_SIZE = 1000
DIRECT_SEEDING_THREADS = 8
SESSION_STATE = {"scopes": ["read"]}
PEER_PREFIXES: dict[TokenScheme, str] = {
    "raw": settings.RAW_PREFIX,
    "starlette": settings.STARLETTE_PREFIX,
    "flask": settings.FLASK_PREFIX,
    "fastapi_users": settings.FASTAPI_USERS_PREFIX,
}


def user_id_for(index: int) -> str:
    return f"user-{index // SESSIONS_PER_USER:06d}"


def seed_peer_scheme(client: redis.Redis, scheme: TokenScheme, count: int) -> list[str]:
    """Store ``count`` tokens of a hand-written or peer scheme and return a sample."""
    prefix = PEER_PREFIXES[scheme]
    sample: list[str] = []
    now = time.time()
    for start in range(0, count, BATCH_SIZE):
        pipe = client.pipeline(transaction=False)
        for index in range(start, min(start + BATCH_SIZE, count)):
            token = secrets.token_urlsafe(32)
            user_id = user_id_for(index)
            if scheme == "fastapi_users":
                value: bytes | str = str(user_uuid(user_id))
            else:
                value = settings.pack_record(user_id, SESSION_STATE["scopes"], now)
            pipe.set(prefix + token, value, ex=86_400)
            if len(sample) < SAMPLE_SIZE:
                sample.append(token)
        pipe.execute()
    return sample


def pipelined_seeding_works(client: redis.Redis) -> bool:
    """Create a few sessions through a pipeline and check that they validate.

    Leaves the probe sessions in Redis, so the caller empties the database after.
    """
    from bearer_mw import SessionStore

    try:
        pipe = client.pipeline(transaction=False)
        pipelined_store = SessionStore(pipe)  # type: ignore[arg-type]
        created = [pipelined_store.create_session(f"probe-{i}", SESSION_STATE) for i in range(3)]
        pipe.execute()
        store = SessionStore(client)
        for index, (token, _) in enumerate(created):
            session = store.validate_session(token)
            if session is None or session.user_id != f"probe-{index}":
                return False
    except (redis.RedisError, TypeError, ValueError, AttributeError) as exc:
        logger.info("pipelined seeding is not usable (%s), creating sessions one by one", exc)
        return False
    return True


def seed_bearer_mw(
    client: redis.Redis,
    count: int,
    *,
    pipelined: bool,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Create ``count`` bearer_mw sessions and return a sample of their tokens."""
    from bearer_mw import SessionStore

    sample: list[str] = []
    direct_store = SessionStore(client)
    with ThreadPoolExecutor(DIRECT_SEEDING_THREADS) as pool:
        for start in range(0, count, BATCH_SIZE):
            indexes = range(start, min(start + BATCH_SIZE, count))
            if pipelined:
                pipe = client.pipeline(transaction=False)
                store = SessionStore(pipe)  # type: ignore[arg-type]
                tokens = [store.create_session(user_id_for(i), SESSION_STATE)[0] for i in indexes]
                pipe.execute()
            else:
                tokens = list(
                    pool.map(
                        lambda i: direct_store.create_session(user_id_for(i), SESSION_STATE)[0],
                        indexes,
                    )
                )
            sample.extend(tokens[: SAMPLE_SIZE - len(sample)])
            if on_progress is not None:
                on_progress(indexes.stop)
    return sample


def header_values(kind: TokenKind, tokens: Sequence[str]) -> list[str]:
    """Return the Authorization header values for a token kind.

    "-" stands for a request without the header. Malformed and unknown tokens have
    the length of the seeded ones, so every variant sends requests of one size.
    """
    if kind == "missing":
        return ["-"]
    if not tokens:
        raise ValueError(f"no seeded tokens for token kind {kind!r}")
    if kind in {"valid", "idle"}:
        return [f"Bearer {token}" for token in tokens]
    if kind == "malformed":
        return [f"Bearer !{token[1:]}" for token in tokens]
    return [f"Bearer {secrets.token_urlsafe(32)[: len(token)]}" for token in tokens]


def write_header_file(path: Path, values: Sequence[str]) -> Path:
    path.write_text("\n".join(values) + "\n")
    return path
