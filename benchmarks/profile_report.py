"""The Markdown page and JSON record of a ``benchmarks.profile`` run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.measure import Measurement
from benchmarks.profile_stacks import (
    OWNERS,
    StackSummary,
    owner_cpu_us,
    top_functions,
)
from benchmarks.report import table
from benchmarks.runner import now_text

TOP_FUNCTIONS = 15
GUNICORN_WORKER = "gunicorn worker"
# NOTE: only checks on one 2-core VM back this, and benchmarks/README.md gives them.
GTHREAD_CAVEAT = (
    "The gunicorn worker's shares look skewed. It serves requests on several "
    "threads, and in py-spy's blocking mode much of its time lands in redis-py "
    "code that runs after a Redis reply arrives and little in gunicorn's HTTP "
    "parsing. A check in non-blocking mode put most of it into gunicorn. "
    "`benchmarks/README.md` gives the figures."
)


@dataclass
class VariantProfile:
    """The samples, load figures and py-spy totals of one profiled variant."""

    variant: str
    sampled_process: str
    summary: StackSummary
    measurement: Measurement
    sampler_samples: int | None = None
    sampler_errors: int | None = None

    def cpu_us(self, owner: str) -> float | None:
        """Estimate the server CPU microseconds per request that ``owner`` takes."""
        return owner_cpu_us(
            self.summary.share(owner), self.measurement.server_cpu_us_per_request
        )


def share_cell(part: int, total: int) -> str:
    return "-" if not total else f"{part / total:.1%}"


def us_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def owners_table(profiles: Sequence[VariantProfile]) -> str:
    header = [
        "variant",
        "sampled process",
        "samples",
        "req/s",
        "server CPU us/req",
        "server core busy",
        *OWNERS,
    ]
    rows = []
    for profile in profiles:
        measurement = profile.measurement
        busy = measurement.server_cpu_share
        summary = profile.summary
        rows.append(
            [
                f"`{profile.variant}`",
                profile.sampled_process,
                f"{summary.samples:,}",
                f"{measurement.requests_per_second:,.0f}",
                us_cell(measurement.server_cpu_us_per_request),
                "-" if busy is None else f"{busy:.0%}",
                *(share_cell(summary.by_owner[o], summary.samples) for o in OWNERS),
            ]
        )
    return table(header, rows)


def cpu_table(profiles: Sequence[VariantProfile]) -> str:
    header = ["variant", *OWNERS, "total"]
    rows = [
        [
            f"`{profile.variant}`",
            *(us_cell(profile.cpu_us(owner)) for owner in OWNERS),
            us_cell(profile.measurement.server_cpu_us_per_request),
        ]
        for profile in profiles
    ]
    return table(header, rows)


def functions_table(profile: VariantProfile) -> str:
    summary = profile.summary
    cpu_per_request = profile.measurement.server_cpu_us_per_request
    rows = []
    for key, own, on_stack in top_functions(summary, TOP_FUNCTIONS):
        share = own / summary.samples if summary.samples else 0.0
        rows.append(
            [
                f"`{key}`",
                f"{own:,}",
                share_cell(own, summary.samples),
                us_cell(owner_cpu_us(share, cpu_per_request)),
                f"{on_stack:,}",
            ]
        )
    header = [
        "function",
        "own samples",
        "share of samples",
        "est. CPU us/req",
        "samples on stack",
    ]
    return table(header, rows)


METHOD = """\
py-spy samples the uvicorn process, or the one gunicorn worker, in its default
blocking mode, which pauses the process for each sample. With `--gil`, only
the thread that holds the GIL counts, so threads that wait on a socket or a
lock do not. Each sample goes to the innermost frame that belongs to bearer_mw,
the benchmark app (`benchmarks/apps`), redis-py (the `redis` package,
`redis.asyncio` included), the server (uvicorn, h11, gunicorn) or asyncio.
Standard-library and other frames count for their nearest caller among these,
and a sample with none of them counts as other. A function's own samples are
those whose innermost bearer_mw frame it is. Its samples on stack are those
that contain it anywhere on the stack.

Server CPU per request is the user plus system time of the server's process
group from `/proc`, over the load window, divided by the requests served. The
CPU per owner multiplies it by the owner's share of samples. That is an
estimate, because CPU time spent without the GIL, such as system calls and C
code that releases it, is spread over the owners by their shares. The pauses
slow the server, so req/s here is lower than in the load runs."""


def render_page(
    profiles: Sequence[VariantProfile],
    command: str,
    started: str,
    settings: dict[str, str],
    machine: dict[str, str],
    skipped: dict[str, str],
) -> str:
    """Return the Markdown page of a profile run."""
    parts = [
        "# Where server time goes",
        f"Command: `{command}`",
        f"Run from {started} to {now_text()}.",
        METHOD,
        "## Samples by owner",
        owners_table(profiles),
        "## Estimated server CPU per request by owner (us)",
        cpu_table(profiles),
    ]
    for profile in profiles:
        if profile.summary.stack_by_function:
            parts += [
                f"## bearer_mw functions in `{profile.variant}`",
                functions_table(profile),
            ]
    notes = run_notes(profiles, skipped)
    if notes:
        parts += ["## Notes", "\n".join(f"- {note}" for note in notes)]
    parts += [
        "## Settings",
        table(["setting", "value"], [[k, v] for k, v in settings.items()]),
        "## Machine",
        table(["machine", "value"], [[k, v] for k, v in machine.items()]),
    ]
    return "\n\n".join(parts) + "\n"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """Return the count and ``noun``, or ``nouns`` (default noun + "s") unless 1."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def run_notes(profiles: Sequence[VariantProfile], skipped: dict[str, str]) -> list[str]:
    """Return a line per skipped variant and per problem of a profiled one."""
    notes = [f"`{name}` was skipped: {reason}." for name, reason in skipped.items()]
    for profile in profiles:
        measurement = profile.measurement
        name = f"`{profile.variant}`"
        if measurement.error_count:
            notes.append(
                f"{name}: "
                + plural(
                    measurement.unexpected_count,
                    "unexpected status",
                    "unexpected statuses",
                )
                + f" {measurement.unexpected_statuses} and "
                f"{plural(measurement.socket_errors, 'socket error')}."
            )
        if profile.sampler_errors:
            notes.append(
                f"{name}: py-spy reported {plural(profile.sampler_errors, 'error')}, "
                "and the samples it failed to read are left out."
            )
        if profile.summary.skipped_lines:
            lines = plural(profile.summary.skipped_lines, "line")
            notes.append(f"{name}: {lines} of the raw file had no sample count.")
        if not profile.summary.samples:
            notes.append(f"{name}: no sample held the GIL, so it has no shares.")
    if any(profile.sampled_process == GUNICORN_WORKER for profile in profiles):
        notes.append(GTHREAD_CAVEAT)
    return notes


def profile_json(profile: VariantProfile) -> dict[str, Any]:
    summary = profile.summary
    measurement = profile.measurement
    return {
        "variant": profile.variant,
        "sampled_process": profile.sampled_process,
        "samples": summary.samples,
        "samples_by_owner": {owner: summary.by_owner[owner] for owner in OWNERS},
        "share_by_owner": {owner: summary.share(owner) for owner in OWNERS},
        "cpu_us_per_request_by_owner": {
            owner: profile.cpu_us(owner) for owner in OWNERS
        },
        "bearer_mw_functions": [
            {"function": key, "own_samples": own, "samples_on_stack": on_stack}
            for key, own, on_stack in top_functions(
                summary, len(summary.stack_by_function)
            )
        ],
        "skipped_lines": summary.skipped_lines,
        "sampler_samples": profile.sampler_samples,
        "sampler_errors": profile.sampler_errors,
        "requests": measurement.requests,
        "requests_per_second": measurement.requests_per_second,
        "server_cpu_us_per_request": measurement.server_cpu_us_per_request,
        "server_cpu_share": measurement.server_cpu_share,
        "redis_commands_per_request": measurement.redis_commands_per_request,
        "unexpected_statuses": measurement.unexpected_statuses,
        "socket_errors": measurement.socket_errors,
    }
