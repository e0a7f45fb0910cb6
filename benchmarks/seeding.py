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

from bearer_mw import SessionStore
from benchmarks.apps import settings
from benchmarks.redis_server import HarnessClient
from benchmarks.variants import TokenKind, TokenScheme

logger = logging.getLogger(__name__)

# Tokens that the load generator cycles through, whatever the number seeded.
SAMPLE_SIZE = 1000
SESSIONS_PER_USER = 2
BATCH_SIZE = 1000
DIRECT_SEEDING_THREADS = 8
# How far into the idle period seeded idle sessions are, in milliseconds.
IDLE_MARGIN_MS = 60_000
SESSION_STATE = {"scopes": ["read"]}
ProgressCallback = Callable[[int], None]
PEER_PREFIXES: dict[TokenScheme, str] = {
    "raw": settings.RAW_PREFIX,
    "starlette": settings.STARLETTE_PREFIX,
    "flask": settings.FLASK_PREFIX,
    "fastapi_users": settings.FASTAPI_USERS_PREFIX,
}


def user_id_for(index: int) -> str:
    return f"user-{index // SESSIONS_PER_USER:06d}"


def seed_peer_scheme(
    client: HarnessClient, scheme: TokenScheme, count: int
) -> list[str]:
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
                value: bytes | str = str(settings.user_uuid(user_id))
            else:
                value = settings.pack_record(user_id, SESSION_STATE["scopes"], now)
            pipe.set(prefix + token, value, ex=86_400)
            if len(sample) < SAMPLE_SIZE:
                sample.append(token)
        pipe.execute()
    return sample


def create_pipelined(client: HarnessClient, user_ids: Sequence[str]) -> list[str]:
    """Create one session per user id in a single pipeline and return the tokens."""
    pipe = client.pipeline(transaction=False)
    store = SessionStore(pipe)
    tokens = [store.create_session(user_id, SESSION_STATE)[0] for user_id in user_ids]
    pipe.execute()
    return tokens


def pipelined_seeding_works(client: HarnessClient) -> bool:
    """Create a few sessions through a pipeline and check that they validate.

    Leaves the probe sessions in Redis, so the caller empties the database after.
    """
    store = SessionStore(client)
    # One direct creation loads the store's scripts into Redis first. A store that
    # falls back from EVALSHA to EVAL on NOSCRIPT cannot do so inside a pipeline,
    # because the error arrives only when the pipeline runs.
    store.create_session("probe-0", SESSION_STATE)
    user_ids = ["probe-1", "probe-2", "probe-3"]
    try:
        tokens = create_pipelined(client, user_ids)
    except (redis.RedisError, TypeError, ValueError, AttributeError) as exc:
        logger.info(
            "pipelined seeding failed (%s), so sessions are created one by one", exc
        )
        return False
    for user_id, token in zip(user_ids, tokens, strict=True):
        session = store.validate_session(token)
        if session is None or session.user_id != user_id:
            logger.info(
                "pipelined sessions do not validate, so sessions are created one by one"
            )
            return False
    return True


def seed_bearer_mw(
    client: HarnessClient,
    count: int,
    *,
    pipelined: bool,
    on_progress: ProgressCallback | None = None,
) -> list[str]:
    """Create ``count`` bearer_mw sessions and return a sample of their tokens."""
    store = SessionStore(client)
    sample = [store.create_session(user_id_for(0), SESSION_STATE)[0]]
    with ThreadPoolExecutor(DIRECT_SEEDING_THREADS) as pool:
        for start in range(1, count, BATCH_SIZE):
            user_ids = [
                user_id_for(i) for i in range(start, min(start + BATCH_SIZE, count))
            ]
            if pipelined:
                tokens = create_pipelined(client, user_ids)
            else:
                created = pool.map(
                    lambda user_id: store.create_session(user_id, SESSION_STATE),
                    user_ids,
                )
                tokens = [token for token, _ in created]
            sample.extend(tokens[: SAMPLE_SIZE - len(sample)])
            if on_progress is not None:
                on_progress(start + len(user_ids))
    return sample


def seed_idle_bearer_mw(client: HarnessClient, count: int) -> tuple[list[str], str]:
    """Create ``count`` sessions in the idle state and return their tokens.

    The creating store's clock runs behind by the default active period plus one
    minute, which the benchmark servers also use, so the sessions are one minute
    into their idle period. Returns an empty list and the reason when the store's
    settings leave no idle period or the sessions do not come out idle.
    """
    reference = SessionStore(client)
    offset_ms = reference.periods.active + IDLE_MARGIN_MS
    if reference.periods.idle <= 2 * IDLE_MARGIN_MS:
        return [], "the default idle period is too short to seed idle sessions"
    store = SessionStore(client, clock=lambda: reference.now() - offset_ms)
    tokens = [
        store.create_session(user_id_for(i), SESSION_STATE)[0] for i in range(count)
    ]
    session = reference.find_session(tokens[0])
    if session is None or session.state != "idle":
        state = "missing" if session is None else session.state
        return [], f"a session created with a clock set back came out {state}, not idle"
    return tokens, ""


def seed_revoked_bearer_mw(client: HarnessClient, count: int) -> list[str]:
    """Create ``count`` sessions, invalidate them, and return their tokens."""
    store = SessionStore(client)
    tokens = [
        store.create_session(user_id_for(i), SESSION_STATE)[0] for i in range(count)
    ]
    for token in tokens:
        store.invalidate_session(token)
    return tokens


def header_values(kind: TokenKind, tokens: Sequence[str]) -> list[str]:
    """Return the Authorization header values for a token kind.

    "-" stands for a request without the header. A malformed token is a seeded
    one with its first character replaced by "!", which RFC 6750 does not allow
    in a b64token, so every variant sends requests of about one size.
    """
    if kind == "missing":
        return ["-"]
    if not tokens:
        raise ValueError(f"no seeded tokens for token kind {kind!r}")
    if kind == "malformed":
        return [f"Bearer !{token[1:]}" for token in tokens]
    return [f"Bearer {token}" for token in tokens]


def write_header_file(path: Path, values: Sequence[str]) -> Path:
    path.write_text("\n".join(values) + "\n")
    return path
