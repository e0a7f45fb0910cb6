"""The performance targets of bearer_mw, checked against the figures of one run.

A target that the run did not measure is reported as such rather than as met.
Throughput targets compare medians of per-round ratios (see
:mod:`benchmarks.ratios`), so they hold only as well as the run's rounds agree;
the measured column shows the range of those ratios too.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.measure import Measurement
from benchmarks.ratios import paired_ratio, ratio_cell, round_up, spread_cell
from benchmarks.results import RunResult

RAW_GET_TARGET = 0.95
PEER_TARGET = 1.0
SESSIONS_TARGET = 0.95
MEMORY_TARGET_BYTES = 300
# A per-request command count this close to the target counts as equal. Counts
# divide commands by requests served, so requests in flight blur them slightly.
COMMAND_TOLERANCE = 0.01
HIGH_CONCURRENCY = 256
INTERFACES = ("asgi", "wsgi")
PEERS = {
    "asgi": ("asgi:starlette-auth", "asgi:fastapi-users"),
    "wsgi": ("wsgi:flask-httpauth",),
}
NO_COMMAND_SUFFIXES = ("bearer_mw-missing", "bearer_mw-malformed", "bearer_mw-lazy")
# Commands that redis-py sends when it opens a connection. A pool that opens one
# during the measured load adds them, and they are not work per request.
CONNECTION_COMMANDS = frozenset({"hello", "client|setinfo", "auth", "select"})
SCRIPT_COMMANDS = ("evalsha", "eval")


@dataclass(frozen=True)
class TargetCheck:
    """One target, what the run measured for it, and whether it was met.

    ``met`` is None when the run did not measure the target. ``shortfall`` is
    the amount by which a missed target was missed. ``reason`` explains a miss
    that does not depend on the figure, such as failed requests.
    """

    target: str
    measured: str
    met: bool | None
    shortfall: str = ""
    reason: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        if self.met:
            return "met"
        if self.reason:
            return f"missed: {self.reason}"
        return f"missed by {self.shortfall}" if self.shortfall else "missed"


def not_measured(target: str) -> TargetCheck:
    return TargetCheck(target, "-", None)


def ratio_check(
    target: str, ours: Measurement | None, base: Measurement | None, expected: float
) -> TargetCheck:
    if ours is None or base is None:
        return not_measured(target)
    ratio = paired_ratio(ours, base)
    if ratio is None:
        return not_measured(target)
    measured = ratio_cell(ratio, digits=3)
    spread = spread_cell(ratio)
    if spread != "-":
        measured += f", by round {spread}"
    errors = ours.error_count + base.error_count
    if errors:
        reason = f"{errors:,} unexpected statuses or socket errors in these rows"
        return TargetCheck(target, measured, False, reason=reason)
    shortfall = f"{round_up(expected - ratio.median, 3)}x"
    return TargetCheck(target, measured, ratio.meets(expected), shortfall)


def command_check(target: str, m: Measurement | None, expected: float) -> TargetCheck:
    if m is None or m.redis_commands_per_request is None:
        return not_measured(target)
    count = sum(
        calls
        for name, calls in m.redis_commands_by_name.items()
        if name not in CONNECTION_COMMANDS
    )
    met = abs(count - expected) <= COMMAND_TOLERANCE
    measured = f"{count:.2f} (`{m.variant}`, connection set-up left out)"
    return TargetCheck(target, measured, met, f"{abs(count - expected):.2f}")


def throughput_checks(result: RunResult) -> list[TargetCheck]:
    by_name = {m.variant: m for m in result.comparison}
    checks = []
    for interface in INTERFACES:
        ours = by_name.get(f"{interface}:bearer_mw")
        label = interface.upper()
        checks.append(
            ratio_check(
                f"{label} bearer_mw at {RAW_GET_TARGET:.2f}x `raw-get` or more",
                ours,
                by_name.get(f"{interface}:raw-get"),
                RAW_GET_TARGET,
            )
        )
        if interface == "asgi":
            # The same target for reads sent one by one, as on a cluster client.
            checks.append(
                ratio_check(
                    f"{label} bearer_mw, `batch_reads=False`, at "
                    f"{RAW_GET_TARGET:.2f}x `raw-get` or more",
                    by_name.get("asgi:bearer_mw-unbatched"),
                    by_name.get("asgi:raw-get"),
                    RAW_GET_TARGET,
                )
            )
        checks.extend(
            ratio_check(
                f"{label} bearer_mw at {PEER_TARGET:.2f}x `{peer}` or more",
                ours,
                by_name.get(peer),
                PEER_TARGET,
            )
            for peer in PEERS[interface]
        )
    return checks


def command_checks(result: RunResult) -> list[TargetCheck]:
    by_name = {m.variant: m for m in result.comparison}
    checks = [
        command_check(
            f"{interface.upper()}: 1 Redis command per validated request",
            by_name.get(f"{interface}:bearer_mw"),
            1.0,
        )
        for interface in INTERFACES
    ]
    checks.extend(
        command_check(
            f"{interface.upper()}: 0 Redis commands for `{suffix}`",
            by_name.get(f"{interface}:{suffix}"),
            0.0,
        )
        for interface in INTERFACES
        for suffix in NO_COMMAND_SUFFIXES
    )
    renewal = next(
        (row for row in result.operation_commands if row.operation == "renew_session"),
        None,
    )
    target = "1 Redis command per renewal: one script call, one round trip"
    if renewal is None:
        checks.append(not_measured(target))
    else:
        trips = renewal.round_trips_per_call
        scripts = sum(renewal.by_name.get(name, 0.0) for name in SCRIPT_COMMANDS)
        met = max(abs(trips - 1.0), abs(scripts - 1.0)) <= COMMAND_TOLERANCE
        measured = (
            f"{trips:.2f} round trips and {scripts:.2f} script calls per renewal, "
            f"over {renewal.calls} renewals"
        )
        checks.append(TargetCheck(target, measured, met))
    return checks


def memory_checks(result: RunResult) -> list[TargetCheck]:
    one = f"at most {MEMORY_TARGET_BYTES} bytes per session, index included, "
    probe = result.memory
    if probe is None:
        return [
            not_measured(one + "1 session per user"),
            not_measured(one + "several sessions per user"),
        ]
    alone = probe.session_key_bytes + probe.per_user_bytes_one_session
    shared = probe.bytes_per_session_with_index
    return [
        TargetCheck(
            one + "1 session per user",
            f"{alone:,.0f} B (`MEMORY USAGE`)",
            alone <= MEMORY_TARGET_BYTES,
            f"{alone - MEMORY_TARGET_BYTES:,.0f} B",
        ),
        TargetCheck(
            one + f"{probe.sessions_for_user} sessions per user",
            f"{shared:,.0f} B (`MEMORY USAGE`)",
            shared <= MEMORY_TARGET_BYTES,
            f"{shared - MEMORY_TARGET_BYTES:,.0f} B",
        ),
    ]


def sessions_checks(result: RunResult) -> list[TargetCheck]:
    steps = result.sessions
    checks = []
    for interface in INTERFACES:
        variant = f"{interface}:bearer_mw"
        if len(steps) < 2:
            target = f"{interface.upper()} throughput with the most sessions stored"
            checks.append(not_measured(target + " within 5 % of the fewest"))
            continue
        fewest, largest = steps[0], steps[-1]
        target = (
            f"{interface.upper()} bearer_mw with {largest.stored_sessions:,} sessions "
            f"at {SESSIONS_TARGET:.2f}x or more of {fewest.stored_sessions:,}"
        )
        checks.append(
            ratio_check(
                target,
                find(largest.measurements, variant),
                find(fewest.measurements, variant),
                SESSIONS_TARGET,
            )
        )
    return checks


def concurrency_checks(result: RunResult) -> list[TargetCheck]:
    target = f"no errors at {HIGH_CONCURRENCY} connections"
    high = [
        m
        for m in result.concurrency
        if m.connections == HIGH_CONCURRENCY and "bearer_mw" in m.variant
    ]
    high += [
        row.measurement
        for row in result.pools
        if row.label == "default" and row.measurement.connections == HIGH_CONCURRENCY
    ]
    if not high:
        return [not_measured(target)]
    errors = sum(m.error_count for m in high)
    requests = sum(m.requests for m in high)
    measured = (
        f"{errors:,} unexpected statuses or socket errors in {requests:,} requests "
        f"over {len(high)} measurements"
    )
    return [TargetCheck(target, measured, errors == 0, f"{errors:,} errors")]


def find(measurements: list[Measurement], variant: str) -> Measurement | None:
    return next((m for m in measurements if m.variant == variant), None)


def check_targets(result: RunResult) -> list[TargetCheck]:
    """Check every target against ``result``, in the order the targets are listed."""
    return [
        *throughput_checks(result),
        *command_checks(result),
        *memory_checks(result),
        *sessions_checks(result),
        *concurrency_checks(result),
    ]
