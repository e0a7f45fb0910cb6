"""Sample a server under load with py-spy and report where its time goes.

``python -m benchmarks.profile`` starts a private redis-server on loopback,
seeds the variants' tokens, and serves each variant as the load runs do:
uvicorn for ASGI, gunicorn with one gthread worker for WSGI, on the same cores.
While wrk (or the Python load generator) sends load, ``py-spy record`` samples
the uvicorn process or the gunicorn worker (see ``benchmarks.py_spy``).
``benchmarks.profile_stacks`` charges each sample to the code that owns it,
and the server's CPU time per request over the same window is split by the
owners' shares of the samples. Results go to ``profile.md`` and
``profile.json`` (see ``benchmarks.profile_report``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks import redis_server
from benchmarks.cli import check_range, configure_logging, pinning
from benchmarks.context import BenchContext
from benchmarks.loadgen import Generator, choose_generator, run_load
from benchmarks.machine import machine_info
from benchmarks.measure import SETTLE_SECONDS, LoadSettings, Measurement
from benchmarks.options import (
    DEFAULT_RESULTS_DIR,
    MAX_CONNECTIONS,
    MAX_DURATION_SECONDS,
    MAX_WSGI_THREADS,
)
from benchmarks.processes import live_group_pids
from benchmarks.profile_report import (
    GUNICORN_WORKER,
    VariantProfile,
    profile_json,
    render_page,
)
from benchmarks.profile_stacks import OWNERS, summarise_stacks
from benchmarks.py_spy import (
    check_can_attach,
    find_py_spy,
    finish_record,
    py_spy_version,
    start_record,
)
from benchmarks.runner import (
    describe_pinning,
    describe_uvicorn,
    now_text,
    open_redis,
    supervised_run,
)
from benchmarks.servers import RunningServer
from benchmarks.variants import Variant, select_variants

logger = logging.getLogger(__name__)

RESULTS_STEM = "profile"
DEFAULT_VARIANTS = "asgi:raw-get,asgi:bearer_mw,wsgi:raw-get,wsgi:bearer_mw"
# As many sessions as ``python -m benchmarks run`` seeds by default.
SEED_SESSIONS = 1000
# NOTE: a chosen bound, not a measured one. Each sample pauses the server, and
# the pauses add up with the rate.
MAX_SAMPLE_RATE = 1000
# py-spy samples this long after the load and its settle pause end, so its
# window covers the window of the CPU counters. Idle time adds no samples
# under --gil.
SAMPLER_MARGIN_SECONDS = 1


@dataclass
class ProfileOptions:
    variants: list[Variant]
    duration: float
    rate: int
    connections: int
    warmup: float
    wsgi_threads: int
    results_dir: Path
    redis_url: str | None
    keep_raw: bool
    pin: bool
    verbose: bool
    command: str


def check_before_measuring(options: ProfileOptions) -> str:
    """Return the path of py-spy after checking it, redis-server and the results
    directory, so a missing one fails the run before anything starts."""
    py_spy = find_py_spy()
    if options.redis_url is None:
        redis_server.require_redis_server()
    options.results_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(options.results_dir, os.W_OK):
        raise RuntimeError(
            f"cannot write to the results directory {options.results_dir}"
        )
    return py_spy


def sampled_process(server: RunningServer) -> tuple[int, str]:
    """Return the pid to sample and its description: uvicorn, or gunicorn's worker."""
    if server.app.interface == "asgi":
        return server.child.pid, "uvicorn"
    workers = [pid for pid in live_group_pids(server.pgid) if pid != server.child.pid]
    if len(workers) != 1:
        raise RuntimeError(
            f"expected one gunicorn worker in process group {server.pgid}, "
            f"found {workers}; see {server.child.log_path}"
        )
    return workers[0], GUNICORN_WORKER


def sampler_seconds(duration: float) -> int:
    return math.ceil(duration + SETTLE_SECONDS) + SAMPLER_MARGIN_SECONDS


def warm_up(
    ctx: BenchContext, server: RunningServer, variant: Variant, options: ProfileOptions
) -> None:
    if options.warmup <= 0:
        return
    run_load(
        ctx.supervisor,
        ctx.load.generator,
        server.url,
        ctx.header_file(variant),
        connections=options.connections,
        duration=options.warmup,
        cpu=ctx.load.client_cpu,
        name="warmup",
    )
    time.sleep(SETTLE_SECONDS)


def sample_under_load(
    ctx: BenchContext,
    variant: Variant,
    pid: int,
    output: Path,
    options: ProfileOptions,
    py_spy: str,
) -> tuple[Measurement, int | None, int | None]:
    """Record ``pid`` into ``output`` while the load runs.

    Returns the load's measurement and py-spy's sample and error totals.
    """
    seconds = sampler_seconds(options.duration)
    sampler = start_record(
        ctx.supervisor,
        py_spy,
        pid,
        output,
        rate=options.rate,
        seconds=seconds,
        cpu=ctx.load.client_cpu,
    )
    try:
        measurement = ctx.measure_variant(variant, options.connections)
        sampled, errors = finish_record(sampler, output, seconds)
    finally:
        ctx.supervisor.stop(sampler)
    return measurement, sampled, errors


def profile_variant(
    ctx: BenchContext, variant: Variant, options: ProfileOptions, py_spy: str
) -> VariantProfile:
    """Serve ``variant``, warm it up, sample it under load, then stop its server."""
    server = ctx.server_for(variant.app)
    pid, description = sampled_process(server)
    warm_up(ctx, server, variant, options)
    output = ctx.run_dir / f"{RESULTS_STEM}-{variant.name.replace(':', '-')}.txt"
    logger.info("sampling %s (pid %d) at %d Hz", description, pid, options.rate)
    measurement, sampled, errors = sample_under_load(
        ctx, variant, pid, output, options, py_spy
    )
    if pid not in live_group_pids(server.pgid):
        raise RuntimeError(
            f"{description} {pid} of {variant.name} exited while it was sampled; "
            f"see {server.child.log_path}"
        )
    # A server left running would take CPU from the next variant.
    ctx.supervisor.stop(server.child)
    del ctx.servers[variant.app.name]

    with output.open(errors="replace") as lines:
        summary = summarise_stacks(lines)
    if options.keep_raw:
        shutil.copyfile(output, options.results_dir / output.name)
    return VariantProfile(
        variant.name,
        description,
        summary,
        measurement,
        sampler_samples=sampled,
        sampler_errors=errors,
    )


def run_settings(
    options: ProfileOptions,
    generator: Generator,
    py_spy: str,
    cpus: tuple[int | None, int | None],
) -> dict[str, str]:
    server_cpu, client_cpu = cpus
    return {
        "sampler": f"{py_spy_version(py_spy)}, record --format raw --gil, "
        "blocking mode",
        "samples per second": str(options.rate),
        "load generator": generator,
        "load per variant (s)": f"{options.duration:g}",
        "warm-up per variant (s)": f"{options.warmup:g}",
        "connections": str(options.connections),
        "CPU pinning": describe_pinning(
            server_cpu, client_cpu, None if options.redis_url else client_cpu
        )
        + ("" if client_cpu is None else f", py-spy on CPU {client_cpu}"),
        "WSGI server": f"gunicorn, 1 gthread worker, {options.wsgi_threads} threads",
        "ASGI server": describe_uvicorn(),
        "Redis": "--redis-url"
        if options.redis_url
        else "private redis-server on loopback",
        "sessions seeded per scheme": str(SEED_SESSIONS),
    }


def run_profile(options: ProfileOptions) -> tuple[str, list[VariantProfile]]:
    """Start Redis, profile each variant, write the results, return the page."""
    py_spy = check_before_measuring(options)
    generator = choose_generator("auto")
    started = now_text()
    cpus = pinning(no_pin=not options.pin)
    server_cpu, client_cpu = cpus
    with supervised_run(keep_logs=False) as supervisor:
        check_can_attach(py_spy, supervisor)
        target = open_redis(
            supervisor, options.redis_url, client_cpu, allow_remote=False
        )
        client = target.client()
        load = LoadSettings(supervisor, generator, options.duration, 0.0, client_cpu)
        ctx = BenchContext(
            supervisor,
            load,
            target,
            client,
            supervisor.log_dir,
            server_cpu,
            options.wsgi_threads,
        )
        try:
            ctx.skip_missing_packages(options.variants)
            ctx.seed(options.variants, SEED_SESSIONS)
            machine = machine_info(redis_server.server_version(client))
            profiles = [
                profile_variant(ctx, variant, options, py_spy)
                for variant in options.variants
                if variant.name not in ctx.skipped
            ]
        finally:
            if not target.owned:
                client.flushdb()
            client.close()

    settings = run_settings(options, generator, py_spy, cpus)
    page = render_page(
        profiles, options.command, started, settings, machine, dict(ctx.skipped)
    )
    recorded = {"started (UTC)": started, **settings}
    write_results(options, profiles, page, recorded, machine)
    return page, profiles


def write_results(
    options: ProfileOptions,
    profiles: Sequence[VariantProfile],
    page: str,
    settings: dict[str, str],
    machine: dict[str, str],
) -> None:
    data = {
        "command": options.command,
        "settings": settings,
        "machine": machine,
        "owners": list(OWNERS),
        "variants": [profile_json(profile) for profile in profiles],
    }
    json_path = options.results_dir / f"{RESULTS_STEM}.json"
    page_path = options.results_dir / f"{RESULTS_STEM}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    page_path.write_text(page)
    logger.info("wrote %s and %s", page_path, json_path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile",
        description="Sample server variants under load with py-spy and report "
        "which code their CPU time goes to, with a private redis-server on "
        "loopback.",
    )

    parser.add_argument(
        "--variants",
        default=DEFAULT_VARIANTS,
        help="comma-separated variant names or shell patterns (default: %(default)s)",
    )

    parser.add_argument(
        "--duration",
        type=float,
        default=20.0,
        help="seconds of load, and of sampling, per variant (default: 20)",
    )

    parser.add_argument(
        "--rate",
        type=int,
        default=250,
        help="py-spy samples per second (default: 250)",
    )

    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="concurrent connections of the load generator (default: 64)",
    )

    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of load before sampling starts, per variant (default: 2)",
    )

    parser.add_argument(
        "--wsgi-threads",
        type=int,
        default=4,
        help="threads of the gunicorn gthread worker (default: 4)",
    )

    parser.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        help="directory for profile.md and profile.json (default: benchmarks/results)",
    )

    parser.add_argument(
        "--redis-url",
        help="use this empty loopback Redis database instead of starting "
        "redis-server; it is emptied with FLUSHDB at the end",
    )

    parser.add_argument(
        "--keep-raw",
        action="store_true",
        help="copy the raw py-spy files to the results directory as "
        "profile-VARIANT.txt",
    )

    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the servers and the load generator to separate cores",
    )

    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log the harness at DEBUG level"
    )
    return parser


def build_options(argv: Sequence[str]) -> ProfileOptions:
    """Parse and check the command line. Raises SystemExit on invalid values."""
    args = build_parser().parse_args(argv)
    check_range("--duration", args.duration, 1, MAX_DURATION_SECONDS)
    check_range("--rate", args.rate, 1, MAX_SAMPLE_RATE)
    check_range("--connections", args.connections, 1, MAX_CONNECTIONS)
    check_range("--warmup", args.warmup, 0, MAX_DURATION_SECONDS)
    check_range("--wsgi-threads", args.wsgi_threads, 1, MAX_WSGI_THREADS)
    try:
        variants = select_variants(args.variants)
        if args.redis_url is not None:
            redis_server.require_allowed_host(
                args.redis_url,
                allow_remote=False,
                what="--redis-url",
                remote_option=None,
            )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not variants:
        raise SystemExit("error: --variants selects no variant")
    return ProfileOptions(
        variants=variants,
        duration=args.duration,
        rate=args.rate,
        connections=args.connections,
        warmup=args.warmup,
        wsgi_threads=args.wsgi_threads,
        results_dir=args.results_dir,
        redis_url=args.redis_url,
        keep_raw=args.keep_raw,
        pin=not args.no_pin,
        verbose=args.verbose,
        command=shlex.join(["python", "-m", "benchmarks.profile", *argv]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = build_options(arguments)
    configure_logging(options.verbose)
    try:
        page, profiles = run_profile(options)
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    except (RuntimeError, OSError, redis.RedisError) as exc:
        logger.error("error: %s", exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        return 1
    print(page)
    failed = [
        profile.variant for profile in profiles if profile.measurement.error_count
    ]
    if failed:
        logger.error(
            "%s had unexpected statuses or socket errors, so their samples do not "
            "describe working requests",
            ", ".join(failed),
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
