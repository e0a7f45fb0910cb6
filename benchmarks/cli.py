"""Command line of the harness: ``python -m benchmarks [run|soak|docs|list]``."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

import redis

from benchmarks import commands
from benchmarks import options as limits
from benchmarks.options import DEFAULT_RESULTS_DIR, SUITES, Options, SoakOptions
from benchmarks.variants import ALL_VARIANTS, VARIANTS_BY_NAME, select_variants

logger = logging.getLogger("benchmarks")

COMMANDS = ("run", "soak", "docs", "list")
SECRET_OPTIONS = frozenset({"--token", "--login-body"})
FULL_LEVELS = "1,2,4,8,16,32,64,128,256"
QUICK_LEVELS = "1,16,64,256"
FULL_SESSIONS = "1000,100000,1000000"
QUICK_SESSIONS = "1000,20000"

EPILOG = """\
Load goes only to servers that the harness starts on 127.0.0.1, unless --url names
a running app. --url, --login-url and --redis-url must be loopback addresses unless
--allow-remote-host is given, which is meant for hosts that you operate. A database
given with --redis-url must be empty, and it is emptied again after the run.
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
        help="use this empty Redis database instead of starting redis-server",
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
        help="keep server logs and token files after a successful run",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
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
        default=",".join(SUITES),
        help=f"comma-separated suites to run (default: {','.join(SUITES)})",
    )
    run.add_argument(
        "--variants",
        help="comma-separated variant names or shell patterns such as 'asgi:*' "
        "(default: all)",
    )
    run.add_argument(
        "--duration",
        type=float,
        help="seconds of measured load per measurement (default: 10, quick: 3)",
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
        help="JSON field of the login reply that holds the token",
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
        help="allow --url, --login-url and --redis-url to name hosts other than "
        "loopback",
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


def pinning(no_pin: bool) -> tuple[int | None, int | None]:
    """Return the server core and the load generator core, or None where not pinned."""
    usable = sorted(os.sched_getaffinity(0))
    if no_pin or len(usable) < 2 or shutil.which("taskset") is None:
        return None, None
    return usable[0], usable[1]


def check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise SystemExit(
            f"error: {name} must be between {low:g} and {high:g}, got {value:g}"
        )


def build_run_options(args: argparse.Namespace, command: str) -> Options:
    quick: bool = args.quick
    suites = tuple(part.strip() for part in args.suites.split(",") if part.strip())
    unknown = [suite for suite in suites if suite not in SUITES]
    if unknown:
        raise SystemExit(
            f"error: unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}"
        )
    if args.url and not (args.token or args.login_url):
        raise SystemExit("error: --url needs --token or --login-url")
    try:
        variants = select_variants(args.variants)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    server_cpu, client_cpu = pinning(args.no_pin)
    options = Options(
        command=command,
        suites=suites,
        variants=variants,
        duration=args.duration
        if args.duration is not None
        else (3.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 2.0),
        connections=args.connections,
        concurrency_levels=args.concurrency_levels
        or positive_int_list(QUICK_LEVELS if quick else FULL_LEVELS),
        session_counts=args.session_counts
        or positive_int_list(QUICK_SESSIONS if quick else FULL_SESSIONS),
        seed_sessions=args.seed_sessions,
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        redis_url=args.redis_url,
        generator=args.load_generator,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        redis_cpu=client_cpu,
        wsgi_threads=args.wsgi_threads,
        results_dir=args.results_dir,
        write_docs=args.write_docs,
        keep_logs=args.keep_logs,
        allow_remote_host=args.allow_remote_host,
        quick=quick,
        url=args.url,
        token=args.token,
        login_url=args.login_url,
        login_body=args.login_body,
        token_field=args.token_field,
        server_pid=args.server_pid,
    )
    check_range("--duration", options.duration, 1, limits.MAX_DURATION_SECONDS)
    check_range("--warmup", options.warmup, 0, limits.MAX_DURATION_SECONDS)
    check_range("--rounds", options.rounds, 1, limits.MAX_ROUNDS)
    check_range("--seed-sessions", options.seed_sessions, 1, limits.MAX_STORED_SESSIONS)
    check_range("--wsgi-threads", options.wsgi_threads, 1, 256)
    for connections in [options.connections, *options.concurrency_levels]:
        check_range("connections", connections, 1, limits.MAX_CONNECTIONS)
    for count in options.session_counts:
        check_range("--sessions", count, 1, limits.MAX_STORED_SESSIONS)
    return options


def build_soak_options(args: argparse.Namespace, command: str) -> SoakOptions:
    check_range("--minutes", args.minutes, 0.05, limits.MAX_SOAK_MINUTES)
    check_range("--connections", args.connections, 1, limits.MAX_CONNECTIONS)
    server_cpu, client_cpu = pinning(args.no_pin)
    return SoakOptions(
        command=command,
        minutes=args.minutes,
        variant=VARIANTS_BY_NAME[args.variant],
        connections=args.connections,
        seed_sessions=args.seed_sessions,
        redis_url=args.redis_url,
        generator=args.load_generator,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        wsgi_threads=args.wsgi_threads,
        results_dir=args.results_dir,
        keep_logs=args.keep_logs,
    )


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler]
    )


def redact(arguments: list[str]) -> list[str]:
    """Return the arguments with the values of secret options replaced by "***".

    The command line is stored in the results and the docs page, so a token or
    login body must not appear in it.
    """
    redacted = []
    hide_next = False
    for argument in arguments:
        name, equals, _ = argument.partition("=")
        if hide_next:
            redacted.append("***")
            hide_next = False
        elif name in SECRET_OPTIONS and equals:
            redacted.append(f"{name}=***")
        else:
            redacted.append(argument)
            hide_next = argument in SECRET_OPTIONS
    return redacted


def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in (*COMMANDS, "-h", "--help"):
        arguments.insert(0, "run")
    command = shlex.join(["python", "-m", "benchmarks", *redact(arguments)])
    args = build_parser().parse_args(arguments)
    configure_logging(getattr(args, "verbose", False))
    try:
        return dispatch(args, command)
    except KeyboardInterrupt:
        logger.error("interrupted; every process the harness started was stopped")
        return 130
    except (ValueError, RuntimeError, OSError, redis.RedisError) as exc:
        # Setup errors carry a message that names the value and the fix, so the
        # traceback is shown only with --verbose.
        logger.error("error: %s", exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        return 1


def dispatch(args: argparse.Namespace, command: str) -> int:
    if args.command == "list":
        for variant in ALL_VARIANTS:
            print(f"{variant.name:28} {variant.description}")
        return 0
    if args.command == "docs":
        return commands.rewrite_docs(args.results_dir)
    if args.command == "soak":
        return commands.soak(build_soak_options(args, command))
    return commands.run(build_run_options(args, command))
