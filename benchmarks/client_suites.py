"""Suites that vary the Redis side: client settings (pools) and topology (cluster).

The pools suite serves the ASGI bearer_mw variant once per client choice and
loads each at the same high concurrency, so a pool too small to keep up, or
one that raises when it runs out, shows as unexpected statuses. The cluster
suite serves bearer_mw (ASGI and WSGI) against the run's single Redis and
against a cluster of three primaries, interleaved round by round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from redis.utils import HIREDIS_AVAILABLE

from bearer_mw.client import DEFAULT_MAX_CONNECTIONS
from benchmarks.apps.settings import CLIENT_CHOICES, DEFAULT_CLIENT
from benchmarks.context import BenchContext
from benchmarks.measure import Measurement, combine_rounds, round_order
from benchmarks.variants import VARIANTS_BY_NAME, Variant

logger = logging.getLogger(__name__)

POOLS_VARIANT = "asgi:bearer_mw"
CLUSTER_VARIANTS = ("asgi:bearer_mw", "wsgi:bearer_mw")
UNIX_SOCKET_DETAIL = (
    f"redis_from_url, max_connections {DEFAULT_MAX_CONNECTIONS}, unix socket"
)
SINGLE_LABEL = "single redis-server"
CLUSTER_LABEL = "Redis Cluster, 3 primaries"


@dataclass
class LabeledMeasurement:
    """A measurement with the setting it was taken under and that setting's text."""

    label: str
    detail: str
    measurement: Measurement


def pool_variant(base: Variant, client: str, *, unix_socket: bool) -> Variant:
    app = replace(base.app, client=client, unix_socket=unix_socket)
    return replace(base, name=app.name, app=app)


def pool_choices(ctx: BenchContext) -> list[tuple[Variant, str]]:
    """Return the variant and description of each client choice that can run.

    The pure-Python parser choice runs only where hiredis is installed, since
    without hiredis it is the same as the default. The unix socket choice needs
    the private redis-server.
    """
    base = VARIANTS_BY_NAME[POOLS_VARIANT]
    choices = []
    for name, choice in CLIENT_CHOICES.items():
        if choice.python_parser and not HIREDIS_AVAILABLE:
            logger.info("hiredis is not installed, so every choice uses Python parsing")
            continue
        variant = pool_variant(base, name, unix_socket=False)
        choices.append((variant, choice.description))
    if ctx.redis_target.unix_url is not None:
        unix = pool_variant(base, DEFAULT_CLIENT, unix_socket=True)
        choices.append((unix, UNIX_SOCKET_DETAIL))
    else:
        logger.info("no unix socket to Redis, so that choice is left out")
    return choices


def run_interleaved(
    contexts: list[tuple[BenchContext, Variant, str, str]],
    *,
    connections: int,
    rounds: int,
) -> list[LabeledMeasurement]:
    """Measure each (context, variant) once per round, in :func:`round_order`."""
    by_index: list[list[Measurement]] = [[] for _ in contexts]
    indexes = list(range(len(contexts)))
    for round_index in range(rounds):
        if rounds > 1:
            logger.info("round %d of %d", round_index + 1, rounds)
        for index in round_order(indexes, round_index):
            ctx, variant, _, _ = contexts[index]
            by_index[index].append(ctx.measure_variant(variant, connections))
    return [
        LabeledMeasurement(label, detail, combine_rounds(measurements))
        for (_, _, label, detail), measurements in zip(contexts, by_index, strict=True)
    ]


def run_pools(
    ctx: BenchContext, *, connections: int, rounds: int, seed_sessions: int
) -> list[LabeledMeasurement]:
    """Measure the ASGI bearer_mw variant with each Redis client choice."""
    base = VARIANTS_BY_NAME[POOLS_VARIANT]
    ctx.seed([base], seed_sessions)
    runs = []
    for variant, detail in pool_choices(ctx):
        label = variant.name.removeprefix(POOLS_VARIANT).lstrip("@") or DEFAULT_CLIENT
        runs.append((ctx, variant, label, detail))
    for run_ctx, variant, _, _ in runs:
        run_ctx.server_for(variant.app)
    return run_interleaved(runs, connections=connections, rounds=rounds)


def run_cluster(
    single: BenchContext,
    cluster: BenchContext,
    *,
    connections: int,
    rounds: int,
    seed_sessions: int,
) -> list[LabeledMeasurement]:
    """Measure bearer_mw on a single Redis and on a cluster, side by side."""
    variants = [VARIANTS_BY_NAME[name] for name in CLUSTER_VARIANTS]
    single.seed(variants, seed_sessions)
    cluster.seed(variants, seed_sessions)
    runs = []
    for variant in variants:
        runs.append((single, variant, SINGLE_LABEL, variant.name))
        runs.append((cluster, variant, CLUSTER_LABEL, variant.name))
    for run_ctx, variant, _, _ in runs:
        run_ctx.server_for(variant.app)
    return run_interleaved(runs, connections=connections, rounds=rounds)
