"""Argument parser of ``python -m benchmarks`` and the help text of each option."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.options import (
    DEFAULT_RESULTS_DIR,
    DEFAULT_SUITES,
    POOLS_CONNECTIONS,
    SUITES,
)
from benchmarks.variants import VARIANTS_BY_NAME

DESCRIPTION = """\
Load-test bearer_mw against a bare app, a hand-written Redis lookup and peer
libraries, with servers, Redis and load generator started on loopback. The
default command is "run"; "python -m benchmarks run --help" lists its options.
"""
FULL_LEVELS = "1,2,4,8,16,32,64,128,256"
QUICK_LEVELS = "1,16,64,256"
FULL_SESSIONS = "1000,100000,1000000"
QUICK_SESSIONS = "1000,20000"

EPILOG = """\
Load goes only to servers that the harness starts on 127.0.0.1, unless --url names
a running app. --url, --login-url, --redis-url and --cluster-url must be loopback
addresses unless --allow-remote-host is given, which is meant for hosts that you
operate. The harness checks them before it sends anything. A database given with
--redis-url must be empty, and it is emptied again after the run.
"""


def positive_int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(
            f"expected integers of at least 1, got {text!r}"
        )
    return values


def add_placement_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        help="use this empty Redis database instead of starting redis-server; "
        "redis://, unix:// and redis+cluster:// URLs work",
    )
    parser.add_argument(
        "--load-generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator; auto uses wrk when it is on PATH (default: auto)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin servers and the load generator to separate cores",
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
        help="directory for tables, plots and JSON (default: benchmarks/results)",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the server logs after a successful or interrupted run; token "
        "files are always deleted",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="measure the variants (the default command)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    run.add_argument(
        "--quick",
        action="store_true",
        help="short measurements and smaller sweeps, for a check in a few minutes",
    )
    run.add_argument(
        "--suites",
        default=",".join(DEFAULT_SUITES),
        help=f"comma-separated suites to run, from {', '.join(SUITES)} "
        f"(default: {','.join(DEFAULT_SUITES)})",
    )
    run.add_argument(
        "--variants",
        help="comma-separated variant names or shell patterns such as 'asgi:*' "
        "(default: all)",
    )
    run.add_argument(
        "--duration",
        type=float,
        help="seconds of measured load per measurement; wrk rounds to whole "
        "seconds (default: 10, quick: 3)",
    )
    run.add_argument(
        "--warmup",
        type=float,
        help="seconds of unmeasured load before each measurement "
        "(default: 2, quick: 1)",
    )
    run.add_argument(
        "--connections",
        type=int,
        default=64,
        help="concurrent connections of the comparison and sessions suites "
        "(default: 64)",
    )
    run.add_argument(
        "--concurrency-levels",
        type=positive_int_list,
        help="connection counts of the concurrency sweep "
        f"(default: {FULL_LEVELS}, quick: {QUICK_LEVELS})",
    )
    run.add_argument(
        "--sessions",
        type=positive_int_list,
        dest="session_counts",
        help="stored-session counts of the sessions suite "
        f"(default: {FULL_SESSIONS}, quick: {QUICK_SESSIONS})",
    )
    run.add_argument(
        "--seed-sessions",
        type=int,
        default=1000,
        help="sessions seeded per token scheme for the comparison (default: 1000)",
    )
    run.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds of the comparison, reported as medians "
        "(default: 3, quick: 1)",
    )
    run.add_argument(
        "--pool-connections",
        type=int,
        default=POOLS_CONNECTIONS,
        help="concurrent connections of the pools suite, which compares Redis "
        f"client settings (default: {POOLS_CONNECTIONS})",
    )
    run.add_argument(
        "--cluster-url",
        help="redis+cluster:// URL of an empty Redis Cluster for the cluster suite, "
        "instead of starting three local nodes",
    )
    run.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite docs/benchmarks.md with this run",
    )
    run.add_argument(
        "--url", help="load a running app at this URL instead of starting servers"
    )
    run.add_argument("--token", help="bearer token to send to --url")
    run.add_argument("--login-url", help="POST here to get a token for --url")
    run.add_argument(
        "--login-body",
        help="body of the login POST; JSON if it starts with '{', else a form",
    )
    run.add_argument(
        "--token-field",
        default="access_token",
        help="JSON field of the login response that contains the token",
    )
    run.add_argument(
        "--server-pid",
        type=int,
        help="with --url: pid of a local server; the CPU time of its process group "
        "is read",
    )
    run.add_argument(
        "--allow-remote-host",
        action="store_true",
        help="allow --url, --login-url, --redis-url and --cluster-url to name "
        "hosts other than loopback",
    )
    add_placement_options(run)

    soak = commands.add_parser(
        "soak", help="steady load on one variant for N minutes", allow_abbrev=False
    )
    soak.add_argument(
        "--minutes", type=float, required=True, help="minutes of load, at most 1440"
    )
    soak.add_argument(
        "--variant",
        default="asgi:bearer_mw",
        choices=sorted(VARIANTS_BY_NAME),
        help="variant to load (default: asgi:bearer_mw)",
        metavar="VARIANT",
    )
    soak.add_argument(
        "--connections",
        type=int,
        default=16,
        help="concurrent connections (default: 16)",
    )
    soak.add_argument(
        "--seed-sessions",
        type=int,
        default=1000,
        help="sessions seeded (default: 1000)",
    )
    add_placement_options(soak)

    docs = commands.add_parser(
        "docs", help="rewrite docs/benchmarks.md from the latest saved run"
    )
    docs.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    commands.add_parser("list", help="list the variants")
    return parser
