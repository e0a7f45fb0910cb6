"""The measured suites: variant comparison, concurrency sweep, stored-sessions sweep.

Each suite returns plain measurements. Rounds interleave the variants (every
variant once, then again), so slow drift on a shared machine spreads over all of
them instead of landing on whichever ran last.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from benchmarks import redis_server
from benchmarks.context import BenchContext
from benchmarks.measure import Measurement, combine_rounds, round_order
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
        for variant in round_order(selected, round_index):
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


def seed_sessions_step(ctx: BenchContext, count: int) -> SessionsStep:
    """Empty the context's database, seed ``count`` sessions of each scheme, and
    return the growth of ``used_memory`` per bearer_mw session and raw record."""
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
    return step


def run_sessions(
    contexts: list[tuple[int, BenchContext]],
    variants: list[Variant],
    *,
    connections: int,
    rounds: int,
) -> list[SessionsStep]:
    """Measure throughput and Redis memory with each number of stored sessions.

    Each count has a context of its own, with its own Redis, seeded once. Every
    round measures every variant at every count, so the counts are compared
    under the same drift of the machine, as the comparison's variants are.
    """
    selected = sweep_variants(variants, SESSIONS_VARIANTS)
    steps = [seed_sessions_step(ctx, count) for count, ctx in contexts]
    for _, ctx in contexts:
        for variant in runnable(ctx, selected):
            ctx.server_for(variant.app)
    by_count: dict[tuple[int, str], list[Measurement]] = {}
    for round_index in range(rounds):
        if rounds > 1:
            logger.info("stored-sessions round %d of %d", round_index + 1, rounds)
        pairs = [
            (count, ctx, variant)
            for count, ctx in contexts
            for variant in runnable(ctx, selected)
        ]
        for count, ctx, variant in round_order(pairs, round_index):
            measurement = ctx.measure_variant(variant, connections)
            by_count.setdefault((count, variant.name), []).append(measurement)
    for step, (count, ctx) in zip(steps, contexts, strict=True):
        step.measurements = [
            combine_rounds(by_count[(count, variant.name)])
            for variant in runnable(ctx, selected)
        ]
    return steps


def run_sessions_in_turn(
    ctx: BenchContext,
    variants: list[Variant],
    *,
    counts: list[int],
    connections: int,
    rounds: int,
) -> list[SessionsStep]:
    """Measure each number of stored sessions in turn on one shared database.

    The fallback for a Redis given by URL, where the counts cannot be seeded
    side by side. Drift between the counts is not cancelled, so the settings
    table names the way the run took.
    """
    selected = sweep_variants(variants, SESSIONS_VARIANTS)
    steps = []
    for count in counts:
        step = seed_sessions_step(ctx, count)
        for variant in runnable(ctx, selected):
            combined = combine_rounds(
                [ctx.measure_variant(variant, connections) for _ in range(rounds)]
            )
            # The rounds of one variant ran back to back, not beside those of
            # the other counts, so ratios use the medians instead of pairs.
            step.measurements.append(replace(combined, round_rates=[]))
        steps.append(step)
    return steps
