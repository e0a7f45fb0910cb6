"""Redis memory per session, measured with MEMORY USAGE on the keys a session adds.

The probe does not assume a key layout. In an empty database it creates one
session for a new user, then more sessions for the same user. Keys that appear
with each new session are per-session keys. Keys from the first creation that
grow with later sessions are per-user keys, such as a user's session index.
MEMORY USAGE leaves out the expiry entry and allocator slack, so the
stored-sessions suite also reports the growth of ``used_memory``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bearer_mw import SessionStore
from benchmarks import seeding
from benchmarks.redis_server import HarnessClient
from benchmarks.variants import TokenScheme

# The same length as the seeded user ids, so the probe's session key is the
# same size as the peers' keys it is compared with.
PROBE_USER_ID = seeding.user_id_for(0)
SESSIONS_FOR_PROBE_USER = 10
PEER_SAMPLE_SIZE = 100


@dataclass
class MemoryProbe:
    """Bytes per session from MEMORY USAGE, split into session and per-user keys."""

    sessions_for_user: int
    keys_per_session: float
    session_key_bytes: float
    per_user_keys: list[str]
    per_user_bytes_one_session: int
    per_user_bytes: int
    bytes_per_session_with_index: float
    peer_bytes_per_token: dict[str, float] = field(default_factory=dict)


def key_usages(client: HarnessClient) -> dict[bytes, int]:
    usages = {}
    for key in client.scan_iter(count=1000):
        usage = client.memory_usage(key, samples=0)
        usages[key] = int(usage or 0)
    return usages


def probe_session_memory(client: HarnessClient) -> MemoryProbe:
    """Measure the keys that bearer_mw sessions add. Empties the database first."""
    client.flushdb()
    store = SessionStore(client)
    store.create_session(PROBE_USER_ID, seeding.SESSION_STATE)
    after_first = key_usages(client)
    for _ in range(SESSIONS_FOR_PROBE_USER - 1):
        store.create_session(PROBE_USER_ID, seeding.SESSION_STATE)
    after_all = key_usages(client)

    added_later = set(after_all) - set(after_first)
    per_user = sorted(
        key for key in after_first if after_all.get(key, 0) != after_first[key]
    )
    session_keys = (set(after_first) - set(per_user)) | added_later
    sessions = SESSIONS_FOR_PROBE_USER
    session_bytes = sum(after_all.get(key, 0) for key in session_keys) / sessions
    per_user_bytes = sum(after_all.get(key, 0) for key in per_user)
    probe = MemoryProbe(
        sessions_for_user=sessions,
        keys_per_session=len(session_keys) / sessions,
        session_key_bytes=session_bytes,
        per_user_keys=[key.decode(errors="replace") for key in per_user],
        per_user_bytes_one_session=sum(after_first[key] for key in per_user),
        per_user_bytes=per_user_bytes,
        bytes_per_session_with_index=session_bytes + per_user_bytes / sessions,
    )
    probe.peer_bytes_per_token = probe_peer_memory(client)
    client.flushdb()
    return probe


def probe_peer_memory(client: HarnessClient) -> dict[str, float]:
    """Return the mean MEMORY USAGE of one token key of each raw or peer scheme."""
    schemes: tuple[TokenScheme, ...] = ("raw", "starlette", "flask", "fastapi_users")
    result: dict[str, float] = {}
    for scheme in schemes:
        tokens = seeding.seed_peer_scheme(client, scheme, PEER_SAMPLE_SIZE)
        prefix = seeding.PEER_PREFIXES[scheme]
        usages = [
            int(client.memory_usage(prefix + token, samples=0) or 0) for token in tokens
        ]
        result[scheme] = statistics.fmean(usages)
    return result
