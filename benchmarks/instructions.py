"""Count the instructions that each app variant executes per request, under callgrind.

Throughput ratios on a shared machine vary from run to run, but instruction
counts barely depend on other load, so they repeat closely. ``python -m
benchmarks.instructions`` starts a private redis-server on loopback, seeds one
bearer_mw session and one raw-get record, and runs ``benchmarks.request_loop``
under ``valgrind --tool=callgrind`` twice per variant: once with ``--requests``
measured requests and once with twice as many, both after the same warm-up. The
difference of the two totals, divided by ``--requests``, is the cost of one
request (see ``instruction_report.py``). The table goes to
``instructions.md`` and ``instructions.json`` in the results directory and to
stdout.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import redis
from redis.utils import HIREDIS_AVAILABLE

from bearer_mw import SessionStore
from benchmarks import callgrind, seeding
from benchmarks.apps import settings
from benchmarks.cli import configure_logging
from benchmarks.instruction_options import InstructionOptions, build_options
from benchmarks.instruction_report import (
    InstructionReport,
    VariantCounts,
    render_markdown,
    report_json,
)
from benchmarks.machine import cpu_model, package_version
from benchmarks.redis_server import HarnessClient, server_version, start_redis_server
from benchmarks.request_loop import AUTHORIZATION_ENV
from benchmarks.runner import now_text, supervised_run
from benchmarks.servers import server_environment
from benchmarks.variants import TokenScheme, Variant

logger = logging.getLogger("benchmarks")
RESULTS_STEM = "instructions"
# Requests of the run per variant without valgrind, which checks the statuses
# before the slow runs and writes the bytecode that those runs read.
CHECK_REQUESTS = 5


def seed_tokens(
    client: HarnessClient, schemes: Iterable[TokenScheme] = ("bearer_mw", "raw")
) -> dict[str, str]:
    """Store one token of each scheme, and return the tokens by scheme."""
    tokens: dict[str, str] = {}
    for scheme in sorted(set(schemes)):
        if scheme == "bearer_mw":
            store = SessionStore(client)
            tokens[scheme], _ = store.create_session(
                seeding.user_id_for(0), seeding.SESSION_STATE
            )
        else:
            (tokens[scheme],) = seeding.seed_peer_scheme(client, scheme, 1)
    return tokens


def child_environment(
    variant: Variant, redis_url: str, tokens: dict[str, str]
) -> dict[str, str]:
    """Return the environment of a request loop: its server's, plus the header.

    A fixed hash seed keeps dict and set layouts, and so the instruction
    counts, the same from run to run.
    """
    env = server_environment(variant.app, redis_url)
    env["PYTHONHASHSEED"] = "0"
    env.pop(AUTHORIZATION_ENV, None)
    (value,) = seeding.header_values(variant.token_kind, [tokens[variant.scheme]])
    if value != "-":
        env[AUTHORIZATION_ENV] = value
    return env


def loop_argv(variant: Variant, warmup: int, requests: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.request_loop",
        variant.name,
        str(warmup),
        str(requests),
    ]


def job_name(variant: Variant, repeat: int, requests: int) -> str:
    return f"{variant.name.replace(':', '-')}-repeat{repeat}-requests{requests}"


def check_jobs(
    options: InstructionOptions, environments: dict[str, dict[str, str]]
) -> list[callgrind.Job]:
    """Return a short run per variant without valgrind, which checks the statuses."""
    return [
        callgrind.Job(
            f"check-{variant.name.replace(':', '-')}",
            loop_argv(variant, 0, CHECK_REQUESTS),
            environments[variant.name],
        )
        for variant in options.variants
    ]


# A callgrind output file per variant name, repeat and measured request count.
OutputPaths = dict[tuple[str, int, int], Path]


def callgrind_jobs(
    options: InstructionOptions,
    environments: dict[str, dict[str, str]],
    log_dir: Path,
) -> tuple[list[callgrind.Job], OutputPaths]:
    """Return the short and long callgrind run of every variant and repeat."""
    jobs = []
    outputs: OutputPaths = {}
    for repeat in range(options.repeats):
        for variant in options.variants:
            for requests in (options.requests, 2 * options.requests):
                name = job_name(variant, repeat, requests)
                output_path = log_dir / f"callgrind.out.{name}"
                argv = loop_argv(variant, options.warmup, requests)
                # The check runs wrote the bytecode, so these runs only read it.
                env = {**environments[variant.name], "PYTHONDONTWRITEBYTECODE": "1"}
                command = callgrind.callgrind_argv(argv, output_path)
                jobs.append(callgrind.Job(name, command, env))
                outputs[variant.name, repeat, requests] = output_path
    return jobs, outputs


def read_counts(
    options: InstructionOptions, outputs: OutputPaths
) -> list[VariantCounts]:
    short, long = options.requests, 2 * options.requests
    variants = []
    for variant in options.variants:
        counts = VariantCounts(variant.name, variant.description, short, long)
        for repeat in range(options.repeats):
            short_path = outputs[variant.name, repeat, short]
            long_path = outputs[variant.name, repeat, long]
            counts.short_totals.append(callgrind.read_total_instructions(short_path))
            counts.long_totals.append(callgrind.read_total_instructions(long_path))
        variants.append(counts)
    return variants


def count_instructions(options: InstructionOptions) -> InstructionReport:
    """Start Redis, seed it, run every variant under callgrind, and stop everything."""
    started_text = now_text()
    with supervised_run(options.keep_logs) as supervisor:
        data_dir = supervisor.log_dir / "redis"
        data_dir.mkdir()
        target = start_redis_server(supervisor, data_dir, cpu=None)
        with target.client() as client:
            tokens = seed_tokens(client)
            redis_version = server_version(client)
        environments = {
            variant.name: child_environment(variant, target.url, tokens)
            for variant in options.variants
        }

        callgrind.run_jobs(supervisor, check_jobs(options, environments), options.jobs)
        logger.info("every variant returned its expected statuses")

        jobs, outputs = callgrind_jobs(options, environments, supervisor.log_dir)
        started = time.monotonic()
        logger.info("running %d callgrind runs, %d at a time", len(jobs), options.jobs)
        callgrind.run_jobs(supervisor, jobs, options.jobs)
        elapsed = time.monotonic() - started
        logger.info("callgrind runs took %.0f s", elapsed)
        variants = read_counts(options, outputs)

    return InstructionReport(
        command=options.command,
        settings=run_settings(options, started_text, elapsed),
        versions=versions(redis_version),
        variants=variants,
    )


def run_settings(
    options: InstructionOptions, started_text: str, elapsed: float
) -> dict[str, str]:
    return {
        "started (UTC)": started_text,
        "time of the callgrind runs (s)": f"{elapsed:.0f}",
        "requests (short run, long run)": f"{options.requests}, {2 * options.requests}",
        "warm-up requests per run": str(options.warmup),
        "repeats": str(options.repeats),
        "callgrind runs at once": str(options.jobs),
        "WSGI driver": "in-process call with a fresh environ per request",
        "ASGI driver": "in-process call with a fresh scope per request, one asyncio "
        "event loop for all requests",
        "Redis": "private redis-server on loopback TCP, one seeded session per scheme",
        "app Redis client": settings.CLIENT_CHOICES[
            settings.DEFAULT_CLIENT
        ].description,
        "PYTHONHASHSEED": "0",
        "machine": f"{platform.machine()}, {cpu_model()}",
    }


def versions(redis_version: str) -> dict[str, str]:
    hiredis = package_version("hiredis")
    in_use = "used by redis-py" if HIREDIS_AVAILABLE else "not used by redis-py"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "valgrind": callgrind.valgrind_version(),
        "redis-py": metadata.version("redis"),
        "hiredis": f"{hiredis} ({in_use})",
        "redis-server": redis_version,
        "bearer_mw": package_version("bearer_mw"),
    }


def write_results(report: InstructionReport, results_dir: Path) -> str:
    """Write the Markdown and JSON files and return the Markdown."""
    markdown = render_markdown(report)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{RESULTS_STEM}.md").write_text(markdown)
    data = json.dumps(report_json(report), indent=2) + "\n"
    (results_dir / f"{RESULTS_STEM}.json").write_text(data)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = build_options(arguments)
    configure_logging(options.verbose)
    try:
        callgrind.require_valgrind()
        report = count_instructions(options)
        markdown = write_results(report, options.results_dir)
    except KeyboardInterrupt:
        # The cleanup of the run logs whether every child process was stopped.
        logger.error("interrupted")
        return 130
    except (ValueError, RuntimeError, OSError, redis.RedisError) as exc:
        logger.error("error: %s", exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        return 1
    print(markdown)
    results = options.results_dir / RESULTS_STEM
    logger.info("wrote %s.md and %s.json", results, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
