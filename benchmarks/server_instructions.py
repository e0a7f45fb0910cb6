"""Count the instructions that a whole app server executes per request.

``python -m benchmarks.server_instructions`` serves each variant the way the
load runs do (uvicorn, or gunicorn with one gthread worker), but under
``valgrind --tool=callgrind``. It sends requests one after another on one
keep-alive connection, then stops the server with SIGINT so that callgrind
writes its totals. Each variant runs twice, with ``--requests`` and with three
times as many. The difference of the two totals, divided by the difference of
the counts, is the cost of one request. Unlike ``benchmarks.instructions``,
which calls the app in-process, this includes the HTTP server's own work, so
``raw-get`` over ``bearer_mw`` predicts the throughput ratio of a server that
is bound by its CPU. Results go to ``server_instructions.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import callgrind
from benchmarks.cli import configure_logging
from benchmarks.instructions import seed_tokens
from benchmarks.processes import Supervisor, free_loopback_port
from benchmarks.redis_server import start_redis_server
from benchmarks.report import table
from benchmarks.runner import now_text, supervised_run
from benchmarks.seeding import header_values
from benchmarks.servers import REQUEST_PATH, server_command, server_environment
from benchmarks.variants import VARIANTS_BY_NAME, Variant

logger = logging.getLogger("benchmarks")

DEFAULT_VARIANTS = (
    "asgi:bare", "asgi:raw-get", "asgi:bearer_mw",
    "wsgi:bare", "wsgi:raw-get", "wsgi:bearer_mw",
)  # fmt: skip
DEFAULT_REQUESTS = 200
LONG_RUN_FACTOR = 3
# Python starts about 50 times slower under valgrind, so readiness takes a while.
READY_TIMEOUT_SECONDS = 180.0
EXIT_TIMEOUT_SECONDS = 120
# Shorter than the wait for the exit, so a hung worker is killed and reported.
GRACEFUL_TIMEOUT_SECONDS = 90
RESULTS_STEM = "server_instructions"


@dataclass(frozen=True)
class ServerCount:
    """Instructions per request of one variant's server process."""

    variant: str
    short_total: int
    long_total: int
    requests: int

    @property
    def per_request(self) -> float:
        extra = self.requests * (LONG_RUN_FACTOR - 1)
        return (self.long_total - self.short_total) / extra


def send_requests(port: int, header: str | None, count: int) -> dict[int, int]:
    """Wait for the server, then send ``count`` GETs on one connection."""
    headers = {} if header is None else {"Authorization": header}
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("GET", REQUEST_PATH, headers=headers)
            connection.getresponse().read()
            break
        except OSError:
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    statuses: dict[int, int] = {}
    for _ in range(count):
        connection.request("GET", REQUEST_PATH, headers=headers)
        response = connection.getresponse()
        response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
    connection.close()
    return statuses


def serve_and_count(
    supervisor: Supervisor,
    variant: Variant,
    redis_url: str,
    header: str | None,
    count: int,
    repeat: int = 0,
) -> int:
    """Serve ``variant`` under callgrind for ``count`` requests; return its total.

    gunicorn's master and worker each write a file, and the worker, which
    serves the requests, is the one with the larger total.
    """
    name = f"{variant.name.replace(':', '-')}-{count}-repeat{repeat}"
    output = supervisor.log_dir / f"callgrind.{name}.%p"
    port = free_loopback_port()
    command = server_command(variant.app, port, 4)
    if variant.app.interface == "wsgi":
        # Under valgrind a worker can take longer than gunicorn's default 30 s
        # to exit, and the master would then kill it and lose its count.
        command += ["--graceful-timeout", str(GRACEFUL_TIMEOUT_SECONDS)]
    # gunicorn forks its worker, and the worker runs the app.
    argv = callgrind.callgrind_argv(command, output, trace_children=True)
    env = server_environment(variant.app, redis_url)
    env["PYTHONHASHSEED"] = "0"
    child = supervisor.start(name, argv, env=env)
    try:
        statuses = send_requests(port, header, count)
        os.killpg(child.pid, signal.SIGINT)
        child.process.wait(EXIT_TIMEOUT_SECONDS)
    finally:
        supervisor.stop(child)
    unexpected = set(statuses) - set(variant.expected_statuses)
    if unexpected:
        raise RuntimeError(f"unexpected statuses from {variant.name}: {statuses}")
    totals = [
        callgrind.read_total_instructions(path)
        for path in supervisor.log_dir.glob(f"callgrind.{name}.*")
    ]
    # One file per process: uvicorn's, or gunicorn's master and its one worker.
    # Another number means that a worker was lost or replaced mid-run.
    expected_files = 2 if variant.app.interface == "wsgi" else 1
    if len(totals) != expected_files:
        raise RuntimeError(
            f"callgrind wrote {len(totals)} output files for {name}, expected "
            f"{expected_files}; a server process was killed or restarted during "
            "the run, so rerun it on a less loaded machine"
        )
    return max(totals)


def per_request_by_variant(counts: list[ServerCount]) -> dict[str, list[float]]:
    """Group the per-request figures of every repeat by variant, in run order."""
    grouped: dict[str, list[float]] = {}
    for count in counts:
        grouped.setdefault(count.variant, []).append(count.per_request)
    return grouped


def render(counts: list[ServerCount], command: str, started: str) -> str:
    """Render the page: the median per variant and, with repeats, their range."""
    grouped = per_request_by_variant(counts)
    medians = {name: statistics.median(figures) for name, figures in grouped.items()}
    repeated = any(len(figures) > 1 for figures in grouped.values())
    rows = []
    for name, figures in grouped.items():
        interface = name.split(":", 1)[0]
        raw_get = medians.get(f"{interface}:raw-get")
        predicted = "-" if raw_get is None else f"{raw_get / medians[name]:.3f}"
        row = [f"`{name}`", f"{medians[name]:,.0f}", predicted]
        if repeated:
            row.append(f"{min(figures):,.0f}-{max(figures):,.0f} ({len(figures)})")
        rows.append(row)
    header = [
        "variant",
        "server instructions per request",
        "raw-get instructions over these (CPU-bound throughput vs raw-get)",
    ]
    if repeated:
        header.append("range of repeats (count)")
    return (
        "\n\n".join(
            [
                "# Server instructions per request",
                f"Command: `{command}`",
                f"Run from {started} to {now_text()}. Requests go one after another on "
                "one keep-alive connection; uvicorn uses h11 unless httptools is "
                "installed. With repeats, each figure is the median of the repeats.",
                table(header, rows),
            ]
        )
        + "\n"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.server_instructions",
        description="Count the instructions per request of whole uvicorn and "
        "gunicorn processes under callgrind, with a private redis-server on "
        "loopback.",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=DEFAULT_REQUESTS,
        help="requests of the short run; the long run sends "
        f"{LONG_RUN_FACTOR} times as many (default {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="pairs of runs per variant; with more than one, the table shows "
        "the median and the range (default 1)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help="comma-separated variant names (default: %(default)s)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("benchmarks/results"),
        help="directory for server_instructions.md and .json (default "
        "benchmarks/results)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    configure_logging(verbose=False)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS_BY_NAME]
    if unknown or not names:
        parser.error(
            f"unknown variants {', '.join(unknown) or '(none given)'}; choose from "
            + ", ".join(sorted(VARIANTS_BY_NAME))
        )
    variants = [VARIANTS_BY_NAME[name] for name in names]
    command = "python -m benchmarks.server_instructions " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    started = now_text()

    counts = []
    with supervised_run(keep_logs=False) as supervisor:
        data_dir = supervisor.log_dir / "redis"
        data_dir.mkdir()
        target = start_redis_server(supervisor, data_dir, None)
        client = target.client()
        tokens = seed_tokens(client, [variant.scheme for variant in variants])
        client.close()
        for repeat in range(args.repeats):
            for variant in variants:
                (value,) = header_values(variant.token_kind, [tokens[variant.scheme]])
                header = None if value == "-" else value
                short_total, long_total = (
                    serve_and_count(
                        supervisor, variant, target.url, header, count, repeat
                    )
                    for count in (args.requests, args.requests * LONG_RUN_FACTOR)
                )
                count = ServerCount(
                    variant.name, short_total, long_total, args.requests
                )
                if count.per_request <= 0:
                    raise RuntimeError(
                        f"{variant.name}: the run with more requests counted "
                        f"{long_total:,} instructions, not more than the "
                        f"{short_total:,} of the shorter run"
                    )
                counts.append(count)
                logger.info(
                    "%s, repeat %d: %.0f instructions per request",
                    variant.name,
                    repeat + 1,
                    count.per_request,
                )

    page = render(counts, command.strip(), started)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{RESULTS_STEM}.md").write_text(page)
    data = [asdict(count) | {"per_request": count.per_request} for count in counts]
    (args.results_dir / f"{RESULTS_STEM}.json").write_text(
        json.dumps(data, indent=2) + "\n"
    )
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
