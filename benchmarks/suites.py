"""The measured suites: variant comparison, concurrency sweep, stored-sessions sweep.

Each suite returns plain measurements. Rounds interleave the variants (every
variant once, then again), so slow drift on a shared machine spreads over all of
them instead of landing on whichever ran last.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from benchmarks import redis_server
from benchmarks.context import BenchContext
from benchmarks.measure import Measurement, combine_rounds
from benchmarks.variants import (
    CONCURRENCY_VARIANTS,
    SESSIONS_VARIANTS,
    VARIANTS_BY_NAME,
    Variant,
)

logger = logging.getLogger(__name__)


@dataclass
class SessionsStep:
    """Throughput and Redis memory with ``stored_sessions`` sessions of each scheme."""

    stored_sessions: int
    bearer_mw_bytes_per_session: float
    raw_bytes_per_record: float
    measurements: list[Measurement] = field(default_factory=list)


def runnable(ctx: BenchContext, variants: list[Variant]) -> list[Variant]:
    return [variant for variant in variants if variant.name not in ctx.skipped]


def run_comparison(
    ctx: BenchContext,
    variants: list[Variant],
    *,
    connections: int,
    rounds: int,
    seed_sessions: int,
) -> list[Measurement]:
    """Measure every variant at one concurrency, ``rounds`` times interleaved."""
    ctx.seed(variants, seed_sessions)
    selected = runnable(ctx, variants)
    for variant in selected:
        ctx.server_for(variant.app)
    by_variant: dict[str, list[Measurement]] = {
        variant.name: [] for variant in selected
    }
    for round_index in range(rounds):
        if rounds > 1:
            logger.info("comparison round %d of %d", round_index + 1, rounds)
        for variant in selected:
            by_variant[variant.name].append(ctx.measure_variant(variant, connections))
    return [combine_rounds(measurements) for measurements in by_variant.values()]


def sweep_variants(variants: list[Variant], names: tuple[str, ...]) -> list[Variant]:
    """Return the selected variants among ``names``, or all of ``names`` if none is."""
    chosen = [variant for variant in variants if variant.name in names]
    return chosen or [VARIANTS_BY_NAME[name] for name in names]


def run_concurrency(
    ctx: BenchContext, variants: list[Variant], *, levels: list[int], seed_sessions: int
) -> list[Measurement]:
    """Measure throughput and latency at each number of connections."""
    selected = sweep_variants(variants, CONCURRENCY_VARIANTS)
    ctx.seed(selected, seed_sessions)
    results = []
    for connections in levels:
        for variant in runnable(ctx, selected):
            results.append(ctx.measure_variant(variant, connections))
    return results


def run_sessions(
    ctx: BenchContext, variants: list[Variant], *, counts: list[int], connections: int
) -> list[SessionsStep]:
    """Measure throughput and Redis memory as the number of stored sessions grows.

    Each step starts from an empty database, seeds ``count`` bearer_mw sessions
    and ``count`` raw records, and reads ``used_memory`` around each seeding.
    """
    selected = sweep_variants(variants, SESSIONS_VARIANTS)
    steps = []
    for count in counts:
        ctx.empty_database()
        before = redis_server.used_memory_bytes(ctx.client)
        ctx.seed([VARIANTS_BY_NAME["asgi:bearer_mw"]], count)
        after_sessions = redis_server.used_memory_bytes(ctx.client)
        ctx.seed([VARIANTS_BY_NAME["asgi:raw-get"]], count)
        after_records = redis_server.used_memory_bytes(ctx.client)
        step = SessionsStep(
            stored_sessions=count,
            bearer_mw_bytes_per_session=(after_sessions - before) / count,
            raw_bytes_per_record=(after_records - after_sessions) / count,
        )
        logger.info(
            "%d sessions: %.0f bytes per bearer_mw session, %.0f per raw record",
            count,
            step.bearer_mw_bytes_per_session,
            step.raw_bytes_per_record,
        )
        for variant in runnable(ctx, selected):
            step.measurements.append(ctx.measure_variant(variant, connections))
        steps.append(step)
    return steps
