"""One measurement: warm up, snapshot counters, run the load, snapshot again."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from benchmarks import redis_server
from benchmarks.loadgen import Generator, LoadResult, run_load
from benchmarks.processes import Supervisor, group_cpu_seconds
from benchmarks.redis_server import HarnessClient

T = TypeVar("T")

# Pause after each load run, so the server finishes the requests that were in
# flight when the generator stopped before the counters are read.
SETTLE_SECONDS = 0.5


@dataclass
class LoadSettings:
    """Load settings that every measurement of a run shares."""

    supervisor: Supervisor
    generator: Generator
    duration: float
    warmup: float
    client_cpu: int | None


@dataclass
class Measurement:
    """The figures of one variant at one concurrency and one number of sessions.

    Per-request figures are None where the harness cannot read them, which is the
    case for a server it did not start or a Redis it cannot query.
    """

    variant: str
    connections: int
    stored_sessions: int | None
    generator: str
    requests: int
    requests_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    expected_non_2xx: int
    unexpected_statuses: dict[int, int]
    socket_errors: int
    redis_commands_per_request: float | None
    redis_commands_by_name: dict[str, float] = field(default_factory=dict)
    server_cpu_us_per_request: float | None = None
    redis_cpu_us_per_request: float | None = None
    # Server CPU seconds per second of load. Well below 1.0 at high concurrency
    # means that other processes or the load generator held the server back.
    server_cpu_share: float | None = None
    rounds: int = 1
    # Requests per second of each round, in round order, when rounds > 1. A
    # ratio between two variants of the same run is taken round by round.
    round_rates: list[float] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        """Requests per second of each round; one value for a single round."""
        return self.round_rates or [self.requests_per_second]

    @property
    def unexpected_count(self) -> int:
        return sum(self.unexpected_statuses.values())

    @property
    def error_count(self) -> int:
        """Unexpected statuses plus socket errors."""
        return self.unexpected_count + self.socket_errors


def measure(
    load: LoadSettings,
    *,
    variant: str,
    url: str,
    header_file: Path,
    expected_statuses: frozenset[int],
    connections: int,
    stored_sessions: int | None,
    server_pgid: int | None,
    redis_client: HarnessClient | None,
) -> Measurement:
    """Measure one variant. The warm-up run opens connections and fills caches."""
    if load.warmup > 0:
        run_load(
            load.supervisor,
            load.generator,
            url,
            header_file,
            connections=connections,
            duration=load.warmup,
            cpu=load.client_cpu,
            name="warmup",
        )
        time.sleep(SETTLE_SECONDS)

    commands_before = redis_server.command_calls(redis_client) if redis_client else {}
    redis_cpu_before = (
        redis_server.redis_cpu_seconds(redis_client) if redis_client else 0.0
    )
    server_cpu_before = group_cpu_seconds(server_pgid) if server_pgid else 0.0

    result = run_load(
        load.supervisor,
        load.generator,
        url,
        header_file,
        connections=connections,
        duration=load.duration,
        cpu=load.client_cpu,
    )
    time.sleep(SETTLE_SECONDS)

    server_cpu = (
        group_cpu_seconds(server_pgid) - server_cpu_before if server_pgid else None
    )
    redis_cpu = None
    commands: dict[str, int] | None = None
    if redis_client is not None:
        redis_cpu = redis_server.redis_cpu_seconds(redis_client) - redis_cpu_before
        after = redis_server.command_calls(redis_client)
        commands = redis_server.command_delta(commands_before, after)
    return build_measurement(
        variant,
        result,
        expected_statuses,
        stored_sessions,
        commands,
        server_cpu,
        redis_cpu,
    )


def build_measurement(
    variant: str,
    result: LoadResult,
    expected_statuses: frozenset[int],
    stored_sessions: int | None,
    commands: dict[str, int] | None,
    server_cpu_seconds: float | None,
    redis_cpu_seconds: float | None,
) -> Measurement:
    # The server still serves the requests that the generator dropped at its stop,
    # so the counters cover that many more requests.
    served = result.requests + result.unfinished
    expected_non_2xx = sum(
        count
        for status, count in result.statuses.items()
        if status in expected_statuses and not 200 <= status < 300
    )
    unexpected = {
        status: count
        for status, count in result.statuses.items()
        if status not in expected_statuses
    }
    per_request = None
    by_name: dict[str, float] = {}
    if commands is not None:
        per_request = sum(commands.values()) / served
        by_name = {name: calls / served for name, calls in sorted(commands.items())}
    return Measurement(
        variant=variant,
        connections=result.connections,
        stored_sessions=stored_sessions,
        generator=result.generator,
        requests=result.requests,
        requests_per_second=result.requests_per_second,
        latency_p50_ms=result.latency_p50_ms,
        latency_p99_ms=result.latency_p99_ms,
        expected_non_2xx=expected_non_2xx,
        unexpected_statuses=unexpected,
        socket_errors=sum(result.socket_errors.values()),
        redis_commands_per_request=per_request,
        redis_commands_by_name=by_name,
        server_cpu_us_per_request=_per_request_us(server_cpu_seconds, served),
        redis_cpu_us_per_request=_per_request_us(redis_cpu_seconds, served),
        server_cpu_share=(
            None
            if server_cpu_seconds is None or not result.duration_s
            else server_cpu_seconds / result.duration_s
        ),
    )


def _per_request_us(seconds: float | None, requests: int) -> float | None:
    return None if seconds is None else seconds * 1_000_000 / requests


def round_order(items: list[T], round_index: int) -> list[T]:
    """Return the measuring order of one round: as given, reversed every other round.

    A fixed order would let whatever the previous measurement leaves behind,
    such as connections still closing, fall on the same variant every round.
    """
    return items if round_index % 2 == 0 else items[::-1]


def combine_rounds(rounds: list[Measurement]) -> Measurement:
    """Return the median of each rate, latency and cost, and the sum of each count."""
    if len(rounds) == 1:
        return rounds[0]

    def median_of(values: list[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return statistics.median(present) if present else None

    unexpected: Counter[int] = Counter()
    for measurement in rounds:
        unexpected.update(measurement.unexpected_statuses)
    names = {name for m in rounds for name in m.redis_commands_by_name}
    first = rounds[0]
    return replace(
        first,
        requests=sum(m.requests for m in rounds),
        requests_per_second=statistics.median(m.requests_per_second for m in rounds),
        latency_p50_ms=statistics.median(m.latency_p50_ms for m in rounds),
        latency_p99_ms=statistics.median(m.latency_p99_ms for m in rounds),
        expected_non_2xx=sum(m.expected_non_2xx for m in rounds),
        unexpected_statuses=dict(unexpected),
        socket_errors=sum(m.socket_errors for m in rounds),
        redis_commands_per_request=median_of(
            [m.redis_commands_per_request for m in rounds]
        ),
        redis_commands_by_name={
            name: statistics.median(
                m.redis_commands_by_name.get(name, 0.0) for m in rounds
            )
            for name in sorted(names)
        },
        server_cpu_us_per_request=median_of(
            [m.server_cpu_us_per_request for m in rounds]
        ),
        redis_cpu_us_per_request=median_of(
            [m.redis_cpu_us_per_request for m in rounds]
        ),
        server_cpu_share=median_of([m.server_cpu_share for m in rounds]),
        rounds=len(rounds),
        round_rates=[m.requests_per_second for m in rounds],
    )
