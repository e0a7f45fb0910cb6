"""Settings of one harness run, after the command line is parsed and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.variants import Variant

SUITES = ("comparison", "concurrency", "memory", "sessions", "pools", "cluster")
# The suites of a run without --suites. The cluster suite needs redis-cli, and
# pools and cluster add about 8 minutes to a full run.
DEFAULT_SUITES = ("comparison", "concurrency", "memory", "sessions")
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Upper bounds on the options, which keep every run finite.
MAX_DURATION_SECONDS = 3600.0
MAX_CONNECTIONS = 4096
MAX_STORED_SESSIONS = 10_000_000
MAX_ROUNDS = 20
MAX_SOAK_MINUTES = 1440.0
MAX_WSGI_THREADS = 256
# Concurrent connections of the pools suite, which compares client settings.
POOLS_CONNECTIONS = 256


@dataclass
class Options:
    """Options of ``python -m benchmarks run``; see ``cli.py`` for their help text."""

    command: str
    suites: tuple[str, ...]
    variants: list[Variant]
    duration: float
    warmup: float
    connections: int
    concurrency_levels: list[int]
    session_counts: list[int]
    seed_sessions: int
    rounds: int
    redis_url: str | None
    generator: str
    server_cpu: int | None
    client_cpu: int | None
    redis_cpu: int | None
    wsgi_threads: int
    results_dir: Path
    write_docs: bool
    keep_logs: bool
    allow_remote_host: bool
    quick: bool
    url: str | None = None
    token: str | None = None
    login_url: str | None = None
    login_body: str | None = None
    token_field: str = "access_token"
    server_pid: int | None = None
    pool_connections: int = POOLS_CONNECTIONS
    cluster_url: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class SoakOptions:
    """Options of ``python -m benchmarks soak``."""

    command: str
    minutes: float
    variant: Variant
    connections: int
    seed_sessions: int
    redis_url: str | None
    generator: str
    server_cpu: int | None
    client_cpu: int | None
    wsgi_threads: int
    results_dir: Path
    keep_logs: bool
    # Seconds of unmeasured load before the first RSS reading, and seconds of
    # load per chunk, after each of which RSS is read again.
    warmup_seconds: float = 5.0
    chunk_seconds: float = 60.0
