"""Markdown tables of a run's figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from benchmarks.client_suites import LabeledMeasurement
from benchmarks.command_counts import OperationCommands
from benchmarks.measure import Measurement
from benchmarks.memory import MemoryProbe
from benchmarks.ratios import paired_ratio, ratio_cell, spread_cell
from benchmarks.results import RunResult
from benchmarks.suites import SessionsStep
from benchmarks.targets import TargetCheck, check_targets
from benchmarks.variants import VARIANTS_BY_NAME

DASH = "-"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def number(value: float | None, digits: int = 0) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def percent(share: float | None) -> str:
    return DASH if share is None else f"{share:.0%}"


def baseline_name(variant: str) -> str | None:
    known = VARIANTS_BY_NAME.get(variant)
    if known is None:
        return None
    return f"{known.app.interface}:{known.app.baseline_app_id}"


def commands_cell(measurement: Measurement) -> str:
    if measurement.redis_commands_per_request is None:
        return DASH
    names = [
        name
        for name, calls in measurement.redis_commands_by_name.items()
        if calls >= 0.01
    ]
    total = f"{measurement.redis_commands_per_request:.2f}"
    return f"{total} ({', '.join(names)})" if names else total


def unexpected_cell(measurement: Measurement) -> str:
    if not measurement.unexpected_statuses:
        return "0"
    detail = ", ".join(
        f"{status}: {count}"
        for status, count in sorted(measurement.unexpected_statuses.items())
    )
    return f"**{measurement.unexpected_count}** ({detail})"


def added_cpu_us(
    measurement: Measurement, baseline: Measurement | None
) -> float | None:
    """Return the server CPU per request above the baseline's, or None if unknown."""
    if baseline is None:
        return None
    ours = measurement.server_cpu_us_per_request
    theirs = baseline.server_cpu_us_per_request
    if ours is None or theirs is None:
        return None
    return ours - theirs


def versus(m: Measurement, base: Measurement | None) -> str:
    return DASH if base is None else ratio_cell(paired_ratio(m, base))


def comparison_row(m: Measurement, by_name: dict[str, Measurement]) -> list[str]:
    interface = m.variant.split(":", 1)[0]
    bare = by_name.get(f"{interface}:bare")
    raw_get = by_name.get(f"{interface}:raw-get")
    baseline = by_name.get(baseline_name(m.variant) or "")
    own_baseline = DASH
    if baseline is not None:
        baseline_label = baseline.variant.split(":", 1)[1]
        own_baseline = f"{versus(m, baseline)} `{baseline_label}`"
    return [
        f"`{m.variant}`",
        number(m.requests_per_second),
        versus(m, bare),
        versus(m, raw_get),
        DASH if raw_get is None else spread_cell(paired_ratio(m, raw_get)),
        own_baseline,
        number(m.latency_p50_ms, 2),
        number(m.latency_p99_ms, 2),
        commands_cell(m),
        number(m.server_cpu_us_per_request),
        number(added_cpu_us(m, baseline)),
        number(m.redis_cpu_us_per_request, 1),
        percent(m.server_cpu_share),
        str(m.expected_non_2xx),
        unexpected_cell(m),
        str(m.socket_errors),
    ]


def comparison_table(measurements: list[Measurement]) -> str:
    """Return the variant comparison, with ratios to bare and raw-get per round."""
    by_name = {m.variant: m for m in measurements}
    header = [
        "variant", "req/s", "vs bare", "vs raw-get", "vs raw-get by round",
        "vs own baseline", "p50 ms", "p99 ms", "Redis cmds/req",
        "server CPU us/req", "added CPU us/req", "Redis CPU us/req",
        "server core busy", "expected non-2xx", "unexpected status",
        "socket errors",
    ]  # fmt: skip
    return table(header, [comparison_row(m, by_name) for m in measurements])


def concurrency_tables(measurements: list[Measurement]) -> str:
    """Return two tables, req/s and p99 latency, with one column per concurrency."""
    levels = sorted({m.connections for m in measurements})
    variants = list(dict.fromkeys(m.variant for m in measurements))
    cell = {(m.variant, m.connections): m for m in measurements}
    header = ["variant", *[f"{level} conn" for level in levels]]
    rps_rows = []
    p99_rows = []
    for variant in variants:
        found = [cell.get((variant, level)) for level in levels]
        rps_rows.append(
            [
                f"`{variant}`",
                *[number(m.requests_per_second) if m else DASH for m in found],
            ]
        )
        p99_rows.append(
            [
                f"`{variant}`",
                *[number(m.latency_p99_ms, 2) if m else DASH for m in found],
            ]
        )
    return (
        "Requests per second:\n\n"
        + table(header, rps_rows)
        + "\n\np99 latency in ms:\n\n"
        + table(header, p99_rows)
    )


def sessions_table(steps: list[SessionsStep]) -> str:
    """Return Redis memory growth per session, then the figures of each variant."""
    memory_rows = [
        [
            f"{step.stored_sessions:,}",
            number(step.bearer_mw_bytes_per_session),
            number(step.raw_bytes_per_record),
        ]
        for step in steps
    ]
    memory_header = [
        "stored sessions",
        "used_memory growth per bearer_mw session (bytes)",
        "per raw-get record (bytes)",
    ]
    first = {m.variant: m for m in steps[0].measurements} if steps else {}
    fewest = f"{steps[0].stored_sessions:,}" if steps else ""
    load_rows = []
    for step in steps:
        by_name = {m.variant: m for m in step.measurements}
        for m in step.measurements:
            interface = m.variant.split(":", 1)[0]
            fewest_m = first.get(m.variant)
            at_fewest = None if fewest_m is None else paired_ratio(m, fewest_m)
            load_rows.append([
                f"{step.stored_sessions:,}",
                f"`{m.variant}`",
                number(m.requests_per_second),
                versus(m, by_name.get(f"{interface}:raw-get")),
                ratio_cell(at_fewest),
                spread_cell(at_fewest),
                number(m.latency_p99_ms, 2),
                number(m.server_cpu_us_per_request),
                percent(m.server_cpu_share),
            ])  # fmt: skip
    load_header = [
        "stored sessions", "variant", "req/s", "vs raw-get",
        f"vs {fewest} sessions", f"vs {fewest} by round", "p99 ms",
        "server CPU us/req", "server core busy",
    ]  # fmt: skip
    return table(memory_header, memory_rows) + "\n\n" + table(load_header, load_rows)


def pools_table(rows: list[LabeledMeasurement]) -> str:
    """Return the client-choice table and a summary of the error-free choices."""
    default = next((row for row in rows if row.label == "default"), None)
    default_measurement = default.measurement if default else None
    body = [
        [
            f"`{row.label}`",
            row.detail,
            number(row.measurement.requests_per_second),
            versus(row.measurement, default_measurement),
            number(row.measurement.latency_p50_ms, 2),
            number(row.measurement.latency_p99_ms, 2),
            number(row.measurement.server_cpu_us_per_request),
            percent(row.measurement.server_cpu_share),
            unexpected_cell(row.measurement),
            str(row.measurement.socket_errors),
        ]
        for row in rows
    ]
    header = [
        "client", "settings", "req/s", "vs default", "p50 ms", "p99 ms",
        "server CPU us/req", "server core busy", "unexpected status",
        "socket errors",
    ]  # fmt: skip
    return table(header, body) + "\n\n" + pools_summary(rows)


def pools_summary(rows: list[LabeledMeasurement]) -> str:
    """State which choices served every request as expected, fastest first."""
    if not rows:
        return ""
    connections = rows[0].measurement.connections
    clean = sorted(
        (row for row in rows if row.measurement.error_count == 0),
        key=lambda row: row.measurement.requests_per_second,
        reverse=True,
    )
    failing = [row for row in rows if row.measurement.error_count]
    lines = []
    if clean:
        names = ", ".join(
            f"`{row.label}` ({number(row.measurement.requests_per_second)} req/s)"
            for row in clean
        )
        lines.append(
            f"Without an unexpected status or socket error at {connections} "
            f"connections, fastest first: {names}."
        )
    if failing:
        names = ", ".join(
            f"`{row.label}` ({row.measurement.error_count:,})" for row in failing
        )
        lines.append(f"With unexpected statuses or socket errors: {names}.")
    return "\n".join(lines)


def cluster_table(rows: list[LabeledMeasurement]) -> str:
    """Return bearer_mw on a single Redis and on a cluster, one row per pair."""
    single = {row.detail: row.measurement for row in rows if row.label == rows[0].label}
    body = [
        [
            f"`{row.detail}`",
            row.label,
            number(row.measurement.requests_per_second),
            versus(row.measurement, single.get(row.detail)),
            number(row.measurement.latency_p50_ms, 2),
            number(row.measurement.latency_p99_ms, 2),
            commands_cell(row.measurement),
            number(row.measurement.server_cpu_us_per_request),
            number(row.measurement.redis_cpu_us_per_request, 1),
            percent(row.measurement.server_cpu_share),
            unexpected_cell(row.measurement),
            str(row.measurement.socket_errors),
        ]
        for row in rows
    ]
    header = [
        "variant", "Redis", "req/s", "vs single", "p50 ms", "p99 ms",
        "Redis cmds/req", "server CPU us/req", "Redis CPU us/req",
        "server core busy", "unexpected status", "socket errors",
    ]  # fmt: skip
    return table(header, body)


def memory_table(probe: MemoryProbe) -> str:
    rows = [
        ["keys per session", f"{probe.keys_per_session:.2f}"],
        ["session keys, bytes per session", number(probe.session_key_bytes)],
        [
            "per-user keys",
            ", ".join(f"`{key}`" for key in probe.per_user_keys) or "none found",
        ],
        [
            "per-user keys, bytes with 1 session",
            number(probe.per_user_bytes_one_session),
        ],
        [
            f"per-user keys, bytes with {probe.sessions_for_user} sessions",
            number(probe.per_user_bytes),
        ],
        [
            "bytes per session, including its share of the per-user keys",
            number(probe.bytes_per_session_with_index),
        ],
    ]
    rows += [
        [f"{scheme} token key, bytes", number(size)]
        for scheme, size in probe.peer_bytes_per_token.items()
    ]
    return table(["MEMORY USAGE figure", "value"], rows)


def operation_commands_table(rows: list[OperationCommands]) -> str:
    body = [
        [
            f"`{row.operation}`",
            f"{row.calls:,}",
            f"{row.round_trips_per_call:.2f}",
            ", ".join(f"{name} {made:.2f}" for name, made in row.by_name.items()),
        ]
        for row in rows
    ]
    header = [
        "store operation",
        "calls",
        "round trips per call",
        "server commands per call, scripts' own included",
    ]
    return table(header, body)


def targets_table(checks: list[TargetCheck]) -> str:
    rows = [[check.target, check.measured, check.verdict] for check in checks]
    return table(["target", "measured", "verdict"], rows)


def settings_table(result: RunResult) -> str:
    rows = [[name, str(value)] for name, value in result.settings.items()]
    return table(["setting", "value"], rows)


def machine_table(result: RunResult) -> str:
    return table(
        ["machine", "value"], [[name, value] for name, value in result.machine.items()]
    )


def render_sections(result: RunResult, plot_prefix: str) -> str:
    """Return the Markdown sections of a run; ``plot_prefix`` locates the PNG files."""
    parts = ["## Targets", targets_table(check_targets(result))]
    if result.comparison:
        parts += [
            "## Variants side by side",
            comparison_table(result.comparison),
            f"![requests per second by variant]({plot_prefix}comparison.png)",
        ]
    if result.concurrency:
        parts += [
            "## Concurrency sweep",
            concurrency_tables(result.concurrency),
            f"![throughput and p99 by connections]({plot_prefix}concurrency.png)",
        ]
    if result.sessions:
        parts += [
            "## Stored sessions",
            sessions_table(result.sessions),
            f"![throughput by stored sessions]({plot_prefix}sessions.png)",
        ]
    if result.pools:
        parts += ["## Redis client settings", pools_table(result.pools)]
    if result.cluster:
        parts += ["## Single Redis and Redis Cluster", cluster_table(result.cluster)]
    if result.memory:
        parts += ["## Redis memory per session", memory_table(result.memory)]
    if result.operation_commands:
        parts += [
            "## Redis commands per store operation",
            operation_commands_table(result.operation_commands),
        ]
    if result.skipped:
        skipped = [[f"`{name}`", reason] for name, reason in result.skipped.items()]
        parts += ["## Skipped variants", table(["variant", "reason"], skipped)]
    if result.notes:
        parts += ["## Notes", "\n".join(f"- {note}" for note in result.notes)]
    parts += [
        "## Settings",
        settings_table(result),
        "## Machine",
        machine_table(result),
    ]
    return "\n\n".join(parts) + "\n"


def render_results_page(result: RunResult) -> str:
    header = [
        "# Benchmark results",
        f"Command: `{result.command}`",
        f"Run from {result.started_at} to {result.finished_at}.",
    ]
    return "\n\n".join(header) + "\n\n" + render_sections(result, "")
