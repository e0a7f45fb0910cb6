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
EXIT_TIMEOUT_SECONDS = 120.0
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
) -> int:
    """Serve ``variant`` under callgrind for ``count`` requests; return its total.

    gunicorn's master and worker each write a file, and the worker, which
    serves the requests, is the one with the larger total.
    """
    name = f"{variant.name.replace(':', '-')}-{count}"
    output = supervisor.log_dir / f"callgrind.{name}.%p"
    port = free_loopback_port()
    # gunicorn forks its worker, and the worker runs the app.
    argv = callgrind.callgrind_argv(
        server_command(variant.app, port, 4), output, trace_children=True
    )
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
    if not totals:
        raise RuntimeError(f"callgrind wrote no output for {name}")
    return max(totals)


def render(counts: list[ServerCount], command: str, started: str) -> str:
    by_name = {count.variant: count for count in counts}
    rows = []
    for count in counts:
        interface = count.variant.split(":", 1)[0]
        raw_get = by_name.get(f"{interface}:raw-get")
        predicted = (
            "-" if raw_get is None else f"{raw_get.per_request / count.per_request:.3f}"
        )
        rows.append([f"`{count.variant}`", f"{count.per_request:,.0f}", predicted])
    header = [
        "variant",
        "server instructions per request",
        "raw-get instructions over these (CPU-bound throughput vs raw-get)",
    ]
    return (
        "\n\n".join(
            [
                "# Server instructions per request",
                f"Command: `{command}`",
                f"Run from {started} to {now_text()}. Requests go one after another on "
                "one keep-alive connection; uvicorn uses h11 unless httptools is "
                "installed.",
                table(header, rows),
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_instructions")
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--results-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    configure_logging(verbose=False)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    variants = [VARIANTS_BY_NAME[name] for name in args.variants.split(",")]
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
        tokens = seed_tokens(client)
        client.close()
        for variant in variants:
            (value,) = header_values(variant.token_kind, [tokens[variant.scheme]])
            header = None if value == "-" else value
            short_total, long_total = (
                serve_and_count(supervisor, variant, target.url, header, count)
                for count in (args.requests, args.requests * LONG_RUN_FACTOR)
            )
            counts.append(
                ServerCount(variant.name, short_total, long_total, args.requests)
            )
            logger.info("%s: %.0f instructions per request", variant.name,
                        counts[-1].per_request)  # fmt: skip

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
