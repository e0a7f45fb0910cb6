"""Run the selected suites against servers that the harness starts itself."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.utils import HIREDIS_AVAILABLE

from bearer_mw.client import DEFAULT_MAX_CONNECTIONS
from benchmarks import client_suites, redis_server, suites
from benchmarks.command_counts import probe_operation_commands
from benchmarks.context import BenchContext
from benchmarks.loadgen import Generator, choose_generator
from benchmarks.machine import machine_info
from benchmarks.measure import LoadSettings
from benchmarks.memory import probe_session_memory
from benchmarks.options import Options
from benchmarks.processes import (
    Supervisor,
    termination_as_interrupt,
    termination_signals_ignored,
)
from benchmarks.redis_cluster import start_redis_cluster
from benchmarks.redis_server import RedisTarget
from benchmarks.results import RunResult

logger = logging.getLogger(__name__)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def supervised_run(keep_logs: bool) -> Iterator[Supervisor]:
    """Yield a supervisor whose children are all stopped when the block exits.

    The ``headers-*.txt`` token files are always deleted, because in ``--url``
    mode they contain a live token. The rest of the temporary directory (logs and
    Redis data) is removed after a successful or interrupted run unless
    ``keep_logs`` is set, and kept after a failure if it contains any file.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="bearer_mw-bench-"))
    supervisor = Supervisor(run_dir)
    outcome = "failed"
    with termination_as_interrupt():
        try:
            yield supervisor
            outcome = "succeeded"
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        finally:
            # A signal that arrives during the cleanup is ignored, so the cleanup
            # always runs to its end.
            with termination_signals_ignored():
                clean_up_run(supervisor, outcome, keep_logs)


def clean_up_run(supervisor: Supervisor, outcome: str, keep_logs: bool) -> None:
    """Stop the children, delete the token files, and remove or keep the logs."""
    if outcome == "interrupted":
        logger.info("stopping %d processes", len(supervisor.children))
    running = supervisor.stop_all()
    if running:
        listed = ", ".join(f"{child.name} (pid {child.pid})" for child in running)
        logger.error("failed to stop %s, so kill them by pid", listed)
    elif outcome != "succeeded":
        logger.info("stopped every process that the harness started")

    run_dir = supervisor.log_dir
    for header_file in run_dir.glob("headers-*.txt"):
        header_file.unlink(missing_ok=True)
    keep = keep_logs or (outcome == "failed" and any(run_dir.iterdir()))
    if keep:
        logger.info("logs are in %s", run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)


def open_redis(
    supervisor: Supervisor,
    redis_url: str | None,
    cpu: int | None,
    *,
    allow_remote: bool,
) -> RedisTarget:
    """Start a private redis-server, or check that ``redis_url`` is usable and empty."""
    if redis_url is None:
        data_dir = supervisor.log_dir / "redis"
        data_dir.mkdir()
        target = redis_server.start_redis_server(supervisor, data_dir, cpu)
        logger.info("started redis-server at %s", target.url)
        return target
    redis_server.require_allowed_host(
        redis_url, allow_remote=allow_remote, what="--redis-url"
    )
    target = RedisTarget(redis_url, None)
    redis_server.wait_for_redis(target)
    redis_server.require_empty_database(target)
    return target


def open_cluster(
    supervisor: Supervisor,
    cluster_url: str | None,
    cpu: int | None,
    *,
    allow_remote: bool,
) -> RedisTarget:
    """Start a private three-node cluster, or check that ``cluster_url`` is empty."""
    if cluster_url is None:
        target = start_redis_cluster(supervisor, supervisor.log_dir / "cluster", cpu)
        logger.info("started a Redis Cluster at %s", target.url)
        return target
    return open_redis(supervisor, cluster_url, cpu, allow_remote=allow_remote)


def describe_pinning(
    server_cpu: int | None, client_cpu: int | None, redis_cpu: int | None
) -> str:
    """Describe the cores of the servers, the load generator and the private Redis.

    ``redis_cpu`` is None when the run uses a Redis of the user's
    (``--redis-url``), which the harness neither starts nor pins.
    """
    if server_cpu is None and client_cpu is None:
        return "not pinned"
    redis = (
        "Redis from --redis-url, not pinned"
        if redis_cpu is None
        else f"private Redis on CPU {redis_cpu}"
    )
    return f"servers on CPU {server_cpu}, load generator on CPU {client_cpu}, {redis}"


def describe_uvicorn() -> str:
    """Name the HTTP parser and event loop that uvicorn picks with its defaults."""
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn, 1 process, {parser} parser, {loop} loop"


#: Measuring order of the interleaved suites' rounds, for the settings table.
#: Runs recorded without this row used the same order every round.
ROUND_ORDER = "as listed in odd rounds, reversed in even rounds"


def run_settings(
    options: Options, generator: Generator, ctx: BenchContext | None
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "load generator": generator,
        "duration per measurement (s)": options.duration,
        "warm-up per measurement (s)": options.warmup,
        "connections (comparison, sessions)": options.connections,
        "rounds (comparison)": options.rounds,
        "round order": ROUND_ORDER,
        "suites": ", ".join(options.suites),
        "CPU pinning": describe_pinning(
            options.server_cpu,
            options.client_cpu,
            None if options.redis_url else options.redis_cpu,
        ),
        "WSGI server": f"gunicorn, 1 gthread worker, {options.wsgi_threads} threads",
        "ASGI server": describe_uvicorn(),
        "Redis": "--redis-url"
        if options.redis_url
        else "private redis-server on loopback",
        "app Redis client": "bearer_mw.redis_from_url: BlockingConnectionPool of "
        f"{DEFAULT_MAX_CONNECTIONS}, 2 s timeouts, redis-py retries off",
        "hiredis installed": "yes" if HIREDIS_AVAILABLE else "no",
    }
    if "pools" in options.suites:
        settings["connections (pools)"] = options.pool_connections
    if "cluster" in options.suites:
        settings["cluster (cluster suite)"] = (
            "--cluster-url"
            if options.cluster_url
            else "private, 3 primaries without replicas, on loopback"
        )
    if "concurrency" in options.suites:
        settings["concurrency levels"] = ", ".join(map(str, options.concurrency_levels))
    if "sessions" in options.suites:
        settings["stored sessions"] = ", ".join(
            f"{count:,}" for count in options.session_counts
        )
        settings["stored-sessions rounds"] = (
            f"{options.rounds}, interleaved, one private redis-server per count"
            if options.redis_url is None
            else f"{options.rounds} per count, one count after another on --redis-url"
        )
    if "comparison" in options.suites or "concurrency" in options.suites:
        settings["sessions seeded per scheme (comparison)"] = options.seed_sessions
    if ctx is not None and ctx.pipelined_seeding is not None:
        settings["bearer_mw seeding"] = (
            "pipelined create_session"
            if ctx.pipelined_seeding
            else "one create_session call per session"
        )
    return settings


def run_local(options: Options) -> RunResult:
    """Start Redis and the servers, run the selected suites, and stop everything."""
    started = now_text()
    generator = choose_generator(options.generator)
    if generator == "python":
        options.notes.append(
            "The Python load generator was used in place of wrk. It may saturate "
            "before fast servers do, which narrows the ratios between variants."
        )
    with supervised_run(options.keep_logs) as supervisor:
        target = open_redis(
            supervisor,
            options.redis_url,
            options.redis_cpu,
            allow_remote=options.allow_remote_host,
        )
        client = target.client()
        load = LoadSettings(
            supervisor, generator, options.duration, options.warmup, options.client_cpu
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
        result = RunResult(
            command=options.command,
            started_at=started,
            finished_at=started,
            machine=machine_info(redis_server.server_version(client)),
            settings={},
        )
        ctx.skip_missing_packages(options.variants)
        if target.is_cluster:
            # redis_from_url passes only the timeout to a cluster client, so the
            # decode_responses=True that RedisStrategy needs is lost, and the
            # peer responds with 500 when it parses a bytes user id.
            ctx.skipped["asgi:fastapi-users"] = (
                "needs decode_responses, which a redis+cluster client from "
                "redis_from_url does not take"
            )
        try:
            run_suites(options, ctx, result)
        finally:
            if not target.owned:
                client.flushdb()
            client.close()
        result.settings = run_settings(options, generator, ctx)
        result.skipped = dict(ctx.skipped)
        result.notes = list(options.notes)
        result.finished_at = now_text()
    return result


def run_suites(options: Options, ctx: BenchContext, result: RunResult) -> None:
    """Run the selected suites in a fixed order and store the figures in ``result``."""
    if "comparison" in options.suites:
        logger.info("suite: comparison")
        result.comparison = suites.run_comparison(
            ctx,
            options.variants,
            connections=options.connections,
            rounds=options.rounds,
            seed_sessions=options.seed_sessions,
        )
    if "concurrency" in options.suites:
        logger.info("suite: concurrency")
        result.concurrency = suites.run_concurrency(
            ctx,
            options.variants,
            levels=options.concurrency_levels,
            seed_sessions=options.seed_sessions,
        )
    if "pools" in options.suites:
        logger.info("suite: pools")
        result.pools = client_suites.run_pools(
            ctx,
            connections=options.pool_connections,
            rounds=options.rounds,
            seed_sessions=options.seed_sessions,
        )
    if "cluster" in options.suites:
        logger.info("suite: cluster")
        result.cluster = run_cluster_suite(options, ctx)
    if "memory" in options.suites:
        logger.info("suite: memory")
        ctx.empty_database()
        result.memory = probe_session_memory(ctx.client)
        result.operation_commands = probe_operation_commands(ctx.client)
    if "sessions" in options.suites:
        logger.info("suite: sessions")
        result.sessions = run_sessions_suite(options, ctx)


def run_cluster_suite(
    options: Options, single: BenchContext
) -> list[client_suites.LabeledMeasurement]:
    """Measure bearer_mw on the run's Redis and on a cluster.

    At the end the cluster's app servers and private nodes are stopped, and a
    ``--cluster-url`` cluster is emptied with FLUSHDB on each primary.
    """
    target = open_cluster(
        single.supervisor,
        options.cluster_url,
        options.redis_cpu,
        allow_remote=options.allow_remote_host,
    )
    cluster = BenchContext(
        single.supervisor,
        single.load,
        target,
        target.client(),
        single.run_dir,
        single.server_cpu,
        single.wsgi_threads,
        log_prefix="cluster-",
    )
    try:
        return client_suites.run_cluster(
            single,
            cluster,
            connections=options.connections,
            rounds=options.rounds,
            seed_sessions=options.seed_sessions,
        )
    finally:
        if not target.owned:
            cluster.client.flushdb()
        cluster.client.close()
        # The cluster's servers and nodes would only take CPU from later suites.
        for server in cluster.servers.values():
            single.supervisor.stop(server.child)
        for child in target.children:
            single.supervisor.stop(child)


def sessions_side_by_side(target: RedisTarget) -> bool:
    """Return whether the sessions suite can start one private Redis per count."""
    return target.child is not None


def run_sessions_suite(
    options: Options, ctx: BenchContext
) -> list[suites.SessionsStep]:
    """Measure each number of stored sessions, on a private Redis per count.

    With the harness's own redis-server, every count gets a redis-server of its
    own, seeded once, and the counts are measured in interleaved rounds. On a
    Redis given by URL they are seeded and measured in turn. The extra servers
    are stopped at the end, since they would only take memory from later work.
    """
    if not sessions_side_by_side(ctx.redis_target):
        return suites.run_sessions_in_turn(
            ctx,
            options.variants,
            counts=options.session_counts,
            connections=options.connections,
            rounds=options.rounds,
        )
    contexts: list[tuple[int, BenchContext]] = []
    try:
        for count in options.session_counts:
            data_dir = ctx.run_dir / f"redis-sessions-{count}"
            data_dir.mkdir()
            target = redis_server.start_redis_server(
                ctx.supervisor,
                data_dir,
                options.redis_cpu,
                name=f"redis-server-{count}-sessions",
            )
            logger.info("started redis-server for %d sessions at %s", count, target.url)
            contexts.append(
                (
                    count,
                    BenchContext(
                        ctx.supervisor,
                        ctx.load,
                        target,
                        target.client(),
                        ctx.run_dir,
                        ctx.server_cpu,
                        ctx.wsgi_threads,
                        pipelined_seeding=ctx.pipelined_seeding,
                        skipped=ctx.skipped,
                        log_prefix=f"sessions-{count}-",
                    ),
                )
            )
        steps = suites.run_sessions(
            contexts,
            options.variants,
            connections=options.connections,
            rounds=options.rounds,
        )
        if ctx.pipelined_seeding is None and contexts:
            ctx.pipelined_seeding = contexts[0][1].pipelined_seeding
        return steps
    finally:
        for _, count_ctx in contexts:
            count_ctx.client.close()
            for server in count_ctx.servers.values():
                ctx.supervisor.stop(server.child)
            if count_ctx.redis_target.child is not None:
                ctx.supervisor.stop(count_ctx.redis_target.child)
