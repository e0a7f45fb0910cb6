"""Soak mode: steady load on one variant for N minutes, with RSS before and after.

The load runs in chunks (one minute by default), so progress and the server's
resident set size are logged between chunks, and the run stops by itself after
the requested time. The "before" RSS is read after a warm-up run, so it
includes the caches and buffers that the first requests fill. Servers are
started by the harness on loopback only. ``run_soak`` is also what
``tests/test_soak.py`` calls.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.context import BenchContext
from benchmarks.loadgen import choose_generator, run_load
from benchmarks.measure import LoadSettings
from benchmarks.options import SoakOptions
from benchmarks.processes import group_rss_bytes
from benchmarks.report import table
from benchmarks.runner import now_text, open_redis, supervised_run

logger = logging.getLogger(__name__)


@dataclass
class SoakChunk:
    """One chunk of load and the server's RSS after it."""

    elapsed_s: float
    requests: int
    latency_p99_ms: float
    unexpected: int
    socket_errors: int
    rss_bytes: int


@dataclass
class SoakResult:
    """Totals and per-chunk figures of a soak run."""

    command: str
    variant: str
    started_at: str
    finished_at: str
    minutes: float
    connections: int
    generator: str
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    unexpected: int = 0
    socket_errors: int = 0
    rss_before_bytes: int = 0
    rss_after_bytes: int = 0
    chunks: list[SoakChunk] = field(default_factory=list)


def run_soak(options: SoakOptions) -> SoakResult:
    generator = choose_generator(options.generator)
    variant = options.variant
    result = SoakResult(
        options.command,
        variant.name,
        now_text(),
        "",
        options.minutes,
        options.connections,
        generator,
    )
    with supervised_run(options.keep_logs) as supervisor:
        target = open_redis(
            supervisor, options.redis_url, options.client_cpu, allow_remote=False
        )
        client = target.client()
        load = LoadSettings(
            supervisor, generator, options.chunk_seconds, 0.0, options.client_cpu
        )
        ctx = BenchContext(
            supervisor,
            load,
            target,
            client,
            supervisor.log_dir,
            options.server_cpu,
            options.wsgi_threads,
        )
        try:
            ctx.seed([variant], options.seed_sessions)
            server = ctx.server_for(variant.app)
            header_file = ctx.header_file(variant)
            logger.info(
                "warming up %s for %.0f s", variant.name, options.warmup_seconds
            )
            run_load(
                supervisor,
                generator,
                server.url,
                header_file,
                connections=options.connections,
                duration=options.warmup_seconds,
                cpu=options.client_cpu,
                name="warmup",
            )
            result.rss_before_bytes = sum(group_rss_bytes(server.pgid).values())
            statuses: Counter[int] = Counter()
            elapsed = 0.0
            total = options.minutes * 60
            while elapsed < total:
                chunk_seconds = max(1.0, min(options.chunk_seconds, total - elapsed))
                chunk = run_load(
                    supervisor,
                    generator,
                    server.url,
                    header_file,
                    connections=options.connections,
                    duration=chunk_seconds,
                    cpu=options.client_cpu,
                )
                elapsed += chunk_seconds
                statuses.update(chunk.statuses)
                unexpected = sum(
                    n
                    for s, n in chunk.statuses.items()
                    if s not in variant.expected_statuses
                )
                rss = sum(group_rss_bytes(server.pgid).values())
                result.chunks.append(
                    SoakChunk(
                        elapsed,
                        chunk.requests,
                        chunk.latency_p99_ms,
                        unexpected,
                        sum(chunk.socket_errors.values()),
                        rss,
                    )
                )
                logger.info(
                    "%.0f of %.0f s: %d requests, p99 %.2f ms, %d unexpected, "
                    "RSS %.1f MiB",
                    elapsed,
                    total,
                    chunk.requests,
                    chunk.latency_p99_ms,
                    unexpected,
                    rss / 2**20,
                )
            result.rss_after_bytes = sum(group_rss_bytes(server.pgid).values())
            result.requests = sum(statuses.values())
            result.statuses = dict(statuses)
            result.unexpected = sum(chunk.unexpected for chunk in result.chunks)
            result.socket_errors = sum(chunk.socket_errors for chunk in result.chunks)
        finally:
            if not target.owned:
                client.flushdb()
            client.close()
    result.finished_at = now_text()
    return result


def render_soak(result: SoakResult) -> str:
    mib = 2**20
    summary = table(
        ["figure", "value"],
        [
            ["variant", f"`{result.variant}`"],
            ["minutes", f"{result.minutes:g}"],
            ["connections", str(result.connections)],
            ["load generator", result.generator],
            ["requests", f"{result.requests:,}"],
            [
                "statuses",
                ", ".join(f"{s}: {n:,}" for s, n in sorted(result.statuses.items())),
            ],
            ["unexpected statuses", str(result.unexpected)],
            ["socket errors", str(result.socket_errors)],
            ["server RSS before (MiB)", f"{result.rss_before_bytes / mib:.1f}"],
            ["server RSS after (MiB)", f"{result.rss_after_bytes / mib:.1f}"],
        ],
    )
    chunks = table(
        ["elapsed s", "requests", "p99 ms", "unexpected", "socket errors", "RSS MiB"],
        [
            [
                f"{c.elapsed_s:.0f}",
                f"{c.requests:,}",
                f"{c.latency_p99_ms:.2f}",
                str(c.unexpected),
                str(c.socket_errors),
                f"{c.rss_bytes / mib:.1f}",
            ]
            for c in result.chunks
        ],
    )
    return (
        f"# Soak run\n\nCommand: `{result.command}`\n\nRun: {result.started_at} to "
        f"{result.finished_at}\n\n{summary}\n\n## Per chunk\n\n{chunks}\n"
    )


def save_soak(result: SoakResult, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "soak.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    path = results_dir / "soak.md"
    path.write_text(render_soak(result))
    return path
