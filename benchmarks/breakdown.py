"""Split the CPU time that bearer_mw adds over raw-get into its parts.

``python -m benchmarks.breakdown`` starts a private redis-server on loopback,
seeds one bearer_mw session and one raw-get record, and calls the WSGI and ASGI
apps in this process, as ``benchmarks.instructions`` does. It measures CPU time
(user plus system, from ``time.process_time``) per request instead of
instructions. Besides ``raw-get`` and ``bearer_mw``, it measures bearer_mw with
one part of the lookup replaced by its result, computed once beforehand:

- ``keys given``: the token's shape check, its SHA-256 digest and the key name;
- ``record given``: the record's decoding and the ``Session`` built from it;
- ``keys and record given``: both, which leaves the header parsing, the policy
  and the environ or scope keys;
- ``OpenSSL SHA-256``: the digest through ``hashlib.sha256`` instead of the
  module that ``bearer_mw.tokens`` picks.

What a part costs is what replacing it saves. The parts run where they run in a
server, between reads from a Redis socket, and cost more there than in a tight
loop of their own. Every round measures every variant of an interface once, and
alternates the order between rounds. The tables show medians over the rounds of
per-round differences, so drift on a shared machine cancels out.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from bearer_mw import tokens
from benchmarks.apps import asgi, settings, wsgi
from benchmarks.cli import configure_logging, pinning
from benchmarks.instructions import seed_tokens
from benchmarks.machine import cpu_model, package_version
from benchmarks.redis_server import start_redis_server
from benchmarks.request_loop import (
    asgi_scope,
    call_asgi,
    call_wsgi,
    wsgi_environ,
)
from benchmarks.runner import now_text, supervised_run

logger = logging.getLogger("benchmarks")
RESULTS_STEM = "breakdown"
INTERFACES = ("wsgi", "asgi")
OK = frozenset({200})

RAW_GET = "raw-get"
BEARER_MW = "bearer_mw"
KEYS_GIVEN = "keys given"
RECORD_GIVEN = "record given"
BOTH_GIVEN = "keys and record given"
OPENSSL_SHA256 = "OpenSSL SHA-256"
VARIANTS = (RAW_GET, BEARER_MW, KEYS_GIVEN, RECORD_GIVEN, BOTH_GIVEN, OPENSSL_SHA256)

# The table's description of each variant.
DESCRIPTIONS = {
    RAW_GET: "one hand-written GET of a packed record",
    BEARER_MW: "the middleware in eager mode with a valid token",
    KEYS_GIVEN: "bearer_mw without the shape check, digest and key name",
    RECORD_GIVEN: "bearer_mw without decoding the record and building the Session",
    BOTH_GIVEN: "bearer_mw without either",
    OPENSSL_SHA256: "bearer_mw with the digest through hashlib.sha256",
}

Patch = Callable[[], AbstractContextManager[None]]
Caller = Callable[[int], None]


@dataclass
class BreakdownOptions:
    requests: int
    warmup: int
    rounds: int
    interfaces: tuple[str, ...]
    results_dir: Path
    pin: bool
    verbose: bool
    command: str


@dataclass
class InterfaceSamples:
    """CPU microseconds per request of each variant, one value per round."""

    interface: str
    samples: dict[str, list[float]] = field(default_factory=dict)


def median_difference(minuend: Sequence[float], subtrahend: Sequence[float]) -> float:
    """Return the median of the per-round differences ``minuend - subtrahend``."""
    return statistics.median(a - b for a, b in zip(minuend, subtrahend, strict=True))


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def summarise(samples: InterfaceSamples) -> list[dict[str, Any]]:
    """Return one row per variant: median CPU, added over raw-get, and savings.

    ``vs raw-get`` is raw-get's CPU per request divided by the variant's, the
    throughput ratio that a server limited by its own core would show.
    """
    raw = samples.samples[RAW_GET]
    full = samples.samples[BEARER_MW]
    rows = []
    for name, values in samples.samples.items():
        per_round = ratios(raw, values)
        rows.append(
            {
                "variant": name,
                "description": DESCRIPTIONS[name],
                "cpu_us": statistics.median(values),
                "added_us": median_difference(values, raw),
                "saved_us": median_difference(full, values),
                "vs_raw_get": statistics.median(per_round),
                "vs_raw_get_range": (min(per_round), max(per_round)),
            }
        )
    return rows


def render_markdown(
    results: list[InterfaceSamples], settings_rows: dict[str, str], command: str
) -> str:
    lines = [
        "# CPU per request of bearer_mw's parts",
        "",
        f"Command: `{command}`",
        "",
        "CPU time per request in one process, medians over the rounds. "
        "'added' is the median per-round difference against raw-get, 'saved' "
        "against bearer_mw, so a part's 'saved' figure is what it costs.",
    ]
    for result in results:
        lines += [
            "",
            f"## {result.interface.upper()}",
            "",
            "| variant | what runs | CPU us/req | added us/req | saved us/req "
            "| vs raw-get | vs raw-get by round |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in summarise(result):
            low, high = row["vs_raw_get_range"]
            lines.append(
                f"| {row['variant']} | {row['description']} | {row['cpu_us']:.1f} "
                f"| {row['added_us']:+.1f} | {row['saved_us']:+.1f} "
                f"| {row['vs_raw_get']:.3f}x | {low:.3f}-{high:.3f}x |"
            )
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in settings_rows.items()]
    return "\n".join(lines) + "\n"


@contextmanager
def attribute_replaced(target: object, name: str, value: object) -> Iterator[None]:
    """Set ``target.name`` to ``value`` for the block, then restore it.

    What is restored is the entry of ``target.__dict__``, or its absence, so
    ``target`` must have a ``__dict__``.
    """
    missing = object()
    previous = target.__dict__.get(name, missing)
    setattr(target, name, value)
    try:
        yield
    finally:
        if previous is missing:
            delattr(target, name)
        else:
            setattr(target, name, previous)


@contextmanager
def unchanged() -> Iterator[None]:
    yield


def variant_patches(store: Any, token: str, reply: bytes) -> dict[str, Patch]:
    """Return, per bearer_mw variant, what to replace while it is measured.

    The replacements go on the store's ``Operations`` instance, so the methods
    that the store calls return results computed here once.
    """
    operations = store._operations
    named = operations.lookup_key(token)
    session = None if named is None else operations.found(named[0], reply)
    if session is None:
        raise RuntimeError("the seeded bearer_mw record did not decode to a session")

    keys_given = partial(attribute_replaced, operations, "lookup_key", lambda _: named)
    record_given = partial(
        attribute_replaced, operations, "found", lambda _digest, _reply: session
    )

    @contextmanager
    def both_given() -> Iterator[None]:
        with keys_given(), record_given():
            yield

    return {
        BEARER_MW: unchanged,
        KEYS_GIVEN: keys_given,
        RECORD_GIVEN: record_given,
        BOTH_GIVEN: both_given,
        OPENSSL_SHA256: partial(
            attribute_replaced, tokens, "_REQUEST_SHA256", hashlib.sha256
        ),
    }


def cpu_per_request(call: Caller, count: int) -> float:
    """Return the CPU microseconds that ``call(count)`` took per request."""
    started = time.process_time()
    call(count)
    return (time.process_time() - started) / count * 1e6


def wsgi_callers(
    client: redis.Redis, raw_header: str, bearer_header: str
) -> tuple[Caller, Caller, Any]:
    """Return the raw-get and bearer_mw callers of WSGI, and the middleware."""
    raw_app = wsgi.build_raw_get_app(client)
    bearer_app = wsgi.build_bearer_mw_app(lazy=False, client=client)
    raw_environ = wsgi_environ(raw_header)
    bearer_environ = wsgi_environ(bearer_header)

    def call_raw(count: int) -> None:
        call_wsgi(raw_app, raw_environ, count, OK)

    def call_bearer(count: int) -> None:
        call_wsgi(bearer_app, bearer_environ, count, OK)

    return call_raw, call_bearer, bearer_app


def asgi_callers(
    loop: asyncio.AbstractEventLoop,
    client: redis.asyncio.Redis,
    raw_header: str,
    bearer_header: str,
) -> tuple[Caller, Caller, Any]:
    """Return the raw-get and bearer_mw callers of ASGI, and the middleware.

    All calls run on ``loop``, so the client keeps its connections.
    """
    raw_app = asgi.build_raw_get_app(client)
    bearer_app = asgi.build_bearer_mw_app(lazy=False, client=client)
    raw_scope = asgi_scope(raw_header)
    bearer_scope = asgi_scope(bearer_header)

    def call_raw(count: int) -> None:
        loop.run_until_complete(call_asgi(raw_app, raw_scope, count, OK))

    def call_bearer(count: int) -> None:
        loop.run_until_complete(call_asgi(bearer_app, bearer_scope, count, OK))

    return call_raw, call_bearer, bearer_app


def measure_rounds(
    interface: str, callers: dict[str, tuple[Caller, Patch]], options: BreakdownOptions
) -> InterfaceSamples:
    """Warm every variant up, then measure each once per round."""
    for call, patch in callers.values():
        with patch():
            call(options.warmup)
    result = InterfaceSamples(interface, {name: [] for name in callers})
    order = list(callers)
    for round_index in range(options.rounds):
        for name in order if round_index % 2 == 0 else reversed(order):
            call, patch = callers[name]
            with patch():
                result.samples[name].append(cpu_per_request(call, options.requests))
        logger.info("%s: round %d of %d", interface, round_index + 1, options.rounds)
    return result


def measure_interface(
    interface: str, tokens_by_scheme: dict[str, str], options: BreakdownOptions
) -> InterfaceSamples:
    """Measure every variant of one interface in interleaved rounds.

    Both apps use one client, so they send their GET over the same pooled
    connection.
    """
    raw_header = f"Bearer {tokens_by_scheme['raw']}"
    bearer_header = f"Bearer {tokens_by_scheme['bearer_mw']}"
    if interface == "wsgi":
        with settings.build_sync_client() as client:
            callers = wsgi_callers(client, raw_header, bearer_header)
            return measure_callers(interface, callers, tokens_by_scheme, options)
    loop = asyncio.new_event_loop()
    try:
        async_client = settings.build_async_client()
        try:
            callers = asgi_callers(loop, async_client, raw_header, bearer_header)
            return measure_callers(interface, callers, tokens_by_scheme, options)
        finally:
            loop.run_until_complete(async_client.aclose())
    finally:
        loop.close()


def measure_callers(
    interface: str,
    callers: tuple[Caller, Caller, Any],
    tokens_by_scheme: dict[str, str],
    options: BreakdownOptions,
) -> InterfaceSamples:
    """Add the patched bearer_mw variants to the two callers and measure them."""
    call_raw, call_bearer, middleware = callers
    store = middleware.store
    token = tokens_by_scheme["bearer_mw"]
    with redis.Redis.from_url(settings.redis_url()) as client:
        reply = client.get(store._operations.lookup_key(token)[1])
    variants: dict[str, tuple[Caller, Patch]] = {RAW_GET: (call_raw, unchanged)}
    for name, patch in variant_patches(store, token, reply).items():
        variants[name] = (call_bearer, patch)
    return measure_rounds(interface, variants, options)


def check_before_measuring(results_dir: Path) -> None:
    """Fail before any measurement when Redis or the results directory is missing."""
    if shutil.which("redis-server") is None:
        raise RuntimeError(
            "redis-server was not found on PATH. Install it (Debian: apt-get "
            "install redis-server) and run the command again."
        )
    results_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(results_dir, os.W_OK):
        raise RuntimeError(f"cannot write to the results directory {results_dir}")


@contextmanager
def pinned_to(cpu: int | None, redis_url: str) -> Iterator[None]:
    """Run the block on ``cpu`` with the apps pointed at ``redis_url``, then restore."""
    previous_affinity = os.sched_getaffinity(0)
    previous_url = os.environ.get(settings.REDIS_URL_ENV)
    os.environ[settings.REDIS_URL_ENV] = redis_url
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        yield
    finally:
        os.sched_setaffinity(0, previous_affinity)
        if previous_url is None:
            os.environ.pop(settings.REDIS_URL_ENV, None)
        else:
            os.environ[settings.REDIS_URL_ENV] = previous_url


def run_settings(
    options: BreakdownOptions,
    started_text: str,
    own_cpu: int | None,
    redis_cpu: int | None,
) -> dict[str, str]:
    pinning_text = (
        "not pinned"
        if own_cpu is None
        else f"this process on CPU {own_cpu}, private Redis on CPU {redis_cpu}"
    )
    return {
        "started (UTC)": started_text,
        "requests per measurement": str(options.requests),
        "warm-up requests per variant": str(options.warmup),
        "rounds": str(options.rounds),
        "CPU pinning": pinning_text,
        "request SHA-256": f"{tokens._REQUEST_SHA256.__module__}.sha256",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis-py": package_version("redis"),
        "hiredis": package_version("hiredis"),
        "machine": f"{platform.machine()}, {cpu_model()}",
    }


def run_breakdown(options: BreakdownOptions) -> str:
    """Start Redis, measure each interface, write the results, return the Markdown."""
    check_before_measuring(options.results_dir)
    started_text = now_text()
    # The cores that a load run gives its servers and its load generator.
    own_cpu, redis_cpu = pinning(no_pin=not options.pin)

    results = []
    with supervised_run(keep_logs=False) as supervisor:
        data_dir = supervisor.log_dir / "redis"
        data_dir.mkdir()
        target = start_redis_server(supervisor, data_dir, cpu=redis_cpu)
        with pinned_to(own_cpu, target.url):
            with target.client() as client:
                tokens_by_scheme = seed_tokens(client)
            for interface in options.interfaces:
                results.append(measure_interface(interface, tokens_by_scheme, options))

    settings_rows = run_settings(options, started_text, own_cpu, redis_cpu)
    write_json(results, settings_rows, options)
    markdown = render_markdown(results, settings_rows, options.command)
    (options.results_dir / f"{RESULTS_STEM}.md").write_text(markdown)
    return markdown


def write_json(
    results: list[InterfaceSamples],
    settings_rows: dict[str, str],
    options: BreakdownOptions,
) -> None:
    data = {
        "command": options.command,
        "settings": settings_rows,
        "interfaces": {
            result.interface: {"samples_us": result.samples, "rows": summarise(result)}
            for result in results
        },
    }
    path = options.results_dir / f"{RESULTS_STEM}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """Return an argument parser for integers of ``minimum`` or more."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


def interface_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(names) - set(INTERFACES))
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"invalid interfaces {text!r}; choose from {', '.join(INTERFACES)}"
        )
    return tuple(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.breakdown",
        description="Measure the CPU time per request of raw-get, bearer_mw, and "
        "bearer_mw with parts of its lookup replaced by precomputed results, in "
        "one process, with a private redis-server on loopback.",
    )
    parser.add_argument(
        "--requests",
        type=int_at_least(1),
        default=3000,
        help="requests per measurement (default 3000)",
    )
    parser.add_argument(
        "--warmup",
        type=int_at_least(0),
        default=500,
        help="requests per variant before the first round (default 500)",
    )
    parser.add_argument(
        "--rounds",
        type=int_at_least(1),
        default=15,
        help="interleaved rounds; the tables show medians (default 15)",
    )
    parser.add_argument(
        "--interfaces",
        type=interface_list,
        default=INTERFACES,
        help="comma-separated interfaces to measure (default wsgi,asgi)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("benchmarks/results"),
        help="directory for breakdown.md and breakdown.json "
        "(default benchmarks/results)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin this process and redis-server to separate cores",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each round")
    return parser


def build_options(argv: Sequence[str]) -> BreakdownOptions:
    args = build_parser().parse_args(argv)
    return BreakdownOptions(
        requests=args.requests,
        warmup=args.warmup,
        rounds=args.rounds,
        interfaces=args.interfaces,
        results_dir=args.results_dir,
        pin=not args.no_pin,
        verbose=args.verbose,
        command=" ".join(["python -m benchmarks.breakdown", *argv]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = build_options(arguments)
    configure_logging(options.verbose)
    try:
        markdown = run_breakdown(options)
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    except (RuntimeError, OSError, redis.RedisError) as exc:
        logger.error("error: %s", exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        return 1
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
