"""Command line of the harness: ``python -m benchmarks [run|soak|docs|list]``."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
from dataclasses import dataclass

import redis

from benchmarks import commands
from benchmarks import options as limits
from benchmarks.arguments import (
    FULL_LEVELS,
    FULL_SESSIONS,
    QUICK_LEVELS,
    QUICK_SESSIONS,
    build_parser,
    positive_int_list,
)
from benchmarks.options import SUITES, Options, SoakOptions
from benchmarks.redis_server import require_allowed_host
from benchmarks.variants import ALL_VARIANTS, VARIANTS_BY_NAME, select_variants

logger = logging.getLogger("benchmarks")

COMMANDS = ("run", "soak", "docs", "list")
SECRET_OPTIONS = frozenset({"--token", "--login-body"})


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


@dataclass(frozen=True)
class Profile:
    """Defaults of the options that ``--quick`` shortens."""

    duration: float
    warmup: float
    rounds: int
    concurrency_levels: str
    session_counts: str


FULL = Profile(10.0, 2.0, 3, FULL_LEVELS, FULL_SESSIONS)
QUICK = Profile(3.0, 1.0, 1, QUICK_LEVELS, QUICK_SESSIONS)


def parse_suites(text: str) -> tuple[str, ...]:
    suites = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [suite for suite in suites if suite not in SUITES]
    if unknown:
        choices = ", ".join(SUITES)
        raise SystemExit(f"error: unknown suite {unknown[0]!r}; choose from {choices}")
    return suites


def build_run_options(args: argparse.Namespace, command: str) -> Options:
    """Apply the ``--quick`` defaults, check every range, and return the options."""
    profile = QUICK if args.quick else FULL
    if args.url and not (args.token or args.login_url):
        raise SystemExit("error: --url needs --token or --login-url")
    try:
        variants = select_variants(args.variants)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None

    duration = profile.duration if args.duration is None else args.duration
    warmup = profile.warmup if args.warmup is None else args.warmup
    rounds = profile.rounds if args.rounds is None else args.rounds
    if args.write_docs and (args.quick or rounds < 3):
        raise SystemExit(
            "error: --write-docs publishes the figures, so it needs a full run of "
            "at least 3 rounds; drop --quick and --rounds below 3"
        )
    levels = args.concurrency_levels or positive_int_list(profile.concurrency_levels)
    # Sorted and without repeats: the sessions suite compares the largest count
    # with the smallest, and gives each count a database of its own.
    session_counts = sorted(
        set(args.session_counts or positive_int_list(profile.session_counts))
    )
    server_cpu, client_cpu = pinning(args.no_pin)

    check_range("--duration", duration, 1, limits.MAX_DURATION_SECONDS)
    check_range("--warmup", warmup, 0, limits.MAX_DURATION_SECONDS)
    check_range("--rounds", rounds, 1, limits.MAX_ROUNDS)
    check_range("--seed-sessions", args.seed_sessions, 1, limits.MAX_STORED_SESSIONS)
    check_range("--wsgi-threads", args.wsgi_threads, 1, limits.MAX_WSGI_THREADS)
    for connections in [args.connections, *levels]:
        check_range("connections", connections, 1, limits.MAX_CONNECTIONS)
    for count in session_counts:
        check_range("--sessions", count, 1, limits.MAX_STORED_SESSIONS)
    check_range("--pool-connections", args.pool_connections, 1, limits.MAX_CONNECTIONS)
    suites = parse_suites(args.suites)
    check_topology_options(args, suites)
    check_hosts(args)
    check_server_pid(args)

    return Options(
        command=command,
        suites=suites,
        variants=variants,
        duration=duration,
        warmup=warmup,
        connections=args.connections,
        concurrency_levels=levels,
        session_counts=session_counts,
        seed_sessions=args.seed_sessions,
        rounds=rounds,
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
        quick=args.quick,
        url=args.url,
        token=args.token,
        login_url=args.login_url,
        login_body=args.login_body,
        token_field=args.token_field,
        server_pid=args.server_pid,
        pool_connections=args.pool_connections,
        cluster_url=args.cluster_url,
    )


def check_topology_options(args: argparse.Namespace, suites: tuple[str, ...]) -> None:
    """Reject suite and URL combinations whose figures would be mislabelled.

    The cluster suite compares a single Redis with a cluster, and the pools
    suite compares pool settings that a cluster client does not use.
    """
    if args.cluster_url and not args.cluster_url.lower().startswith("redis+cluster://"):
        raise SystemExit("error: --cluster-url must be a redis+cluster:// URL")
    redis_is_cluster = bool(args.redis_url) and args.redis_url.lower().startswith(
        "redis+cluster://"
    )
    for suite in ("cluster", "pools"):
        if redis_is_cluster and suite in suites:
            raise SystemExit(
                f"error: the {suite} suite needs a single Redis as --redis-url; "
                "give a cluster with --cluster-url, or leave out that suite"
            )


def check_hosts(args: argparse.Namespace) -> None:
    """Reject a non-loopback --url, --login-url, --redis-url or --cluster-url
    unless --allow-remote-host is given.

    All are checked before the run sends anything, so a loopback login cannot
    go ahead when the Redis URL is remote.
    """
    urls = {
        "--url": args.url,
        "--login-url": args.login_url,
        "--redis-url": args.redis_url,
        "--cluster-url": args.cluster_url,
    }
    for option, url in urls.items():
        if url is None:
            continue
        try:
            require_allowed_host(url, allow_remote=args.allow_remote_host, what=option)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None


def check_server_pid(args: argparse.Namespace) -> None:
    if args.server_pid is None:
        return
    if not args.url:
        raise SystemExit("error: --server-pid needs --url")
    try:
        os.getpgid(args.server_pid)
    except ProcessLookupError:
        raise SystemExit(
            f"error: --server-pid {args.server_pid} names no running process"
        ) from None


def build_soak_options(args: argparse.Namespace, command: str) -> SoakOptions:
    """Check every range and the Redis host, and return the soak options."""
    check_range("--minutes", args.minutes, 0.05, limits.MAX_SOAK_MINUTES)
    check_range("--connections", args.connections, 1, limits.MAX_CONNECTIONS)
    check_range("--seed-sessions", args.seed_sessions, 1, limits.MAX_STORED_SESSIONS)
    check_range("--wsgi-threads", args.wsgi_threads, 1, limits.MAX_WSGI_THREADS)
    if args.redis_url is not None:
        # Soak has no --allow-remote-host, so its Redis is always loopback.
        try:
            require_allowed_host(
                args.redis_url,
                allow_remote=False,
                what="--redis-url",
                remote_option=None,
            )
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
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
    """Log INFO and above to stderr, and DEBUG from the harness with ``verbose``.

    Only the ``benchmarks`` logger goes to DEBUG, because matplotlib and other
    libraries log many lines at that level.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


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
        # The cleanup of each run logs whether every child process was stopped.
        logger.error("interrupted")
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
