"""Instructions per request from callgrind totals, and the tables that show them.

Each variant runs twice per repeat, with a short and a long measured loop after
the same start-up and warm-up. The difference of the two totals divided by the
difference of the request counts is the cost of one request, because everything
else costs the same in both runs. Nothing here does I/O.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

RAW_GET = "raw-get"
BARE = "bare"
BEARER_MW = "bearer_mw"
MISSING_FIGURE = "-"


def per_request_instructions(
    short_total: int, long_total: int, short_requests: int, long_requests: int
) -> float:
    """Return the instructions of one request from the totals of two runs."""
    extra_requests = long_requests - short_requests
    if extra_requests <= 0:
        raise ValueError(
            f"the long run must have more requests than the short run, "
            f"got {long_requests} and {short_requests}"
        )
    extra_instructions = long_total - short_total
    if extra_instructions <= 0:
        raise ValueError(
            f"the long run counted {long_total:,} instructions and the short run "
            f"{short_total:,}, so the difference is not positive; rerun with more "
            "--requests"
        )
    return extra_instructions / extra_requests


@dataclass
class VariantCounts:
    """The callgrind totals of one variant: one short and one long run per repeat."""

    name: str
    description: str
    short_requests: int
    long_requests: int
    short_totals: list[int] = field(default_factory=list)
    long_totals: list[int] = field(default_factory=list)

    @property
    def interface(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def app_label(self) -> str:
        return self.name.split(":", 1)[1]

    def per_request(self) -> list[float]:
        """Return the instructions per request of each repeat."""
        return [
            per_request_instructions(
                short, long, self.short_requests, self.long_requests
            )
            for short, long in zip(self.short_totals, self.long_totals, strict=True)
        ]

    def median(self) -> float:
        return statistics.median(self.per_request())

    def spread(self) -> float:
        """Return max minus min of the repeats as a fraction of their median."""
        figures = self.per_request()
        return (max(figures) - min(figures)) / statistics.median(figures)


@dataclass
class InstructionReport:
    """A finished run: its command, settings, versions and counts per variant."""

    command: str
    settings: dict[str, str]
    versions: dict[str, str]
    variants: list[VariantCounts]

    def find(self, interface: str, app_label: str) -> VariantCounts | None:
        for counts in self.variants:
            if counts.interface == interface and counts.app_label == app_label:
                return counts
        return None

    @property
    def repeats(self) -> int:
        return len(self.variants[0].short_totals) if self.variants else 0


def format_count(value: float) -> str:
    return f"{value:,.0f}"


def format_signed(value: float) -> str:
    return f"{value:+,.0f}"


def variant_row(report: InstructionReport, counts: VariantCounts) -> list[str]:
    median = counts.median()
    raw_get = report.find(counts.interface, RAW_GET)
    bare = report.find(counts.interface, BARE)
    row = [f"`{counts.name}`", format_count(median)]
    if raw_get is None:
        row += [MISSING_FIGURE, MISSING_FIGURE]
    else:
        row += [
            f"{median / raw_get.median():.3f}",
            format_signed(median - raw_get.median()),
        ]
    row.append(
        MISSING_FIGURE if bare is None else format_signed(median - bare.median())
    )
    if report.repeats > 1:
        row.append(f"{counts.spread():.3%}")
    return row


def markdown_table(
    header: list[str], rows: list[list[str]], *, numeric: bool = True
) -> list[str]:
    """Return the lines of a table whose columns after the first are right-aligned
    when ``numeric`` is set."""
    alignments = ["---"] + ["---:" if numeric else "---"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(alignments) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def text_table(header: list[str], values: dict[str, str]) -> list[str]:
    rows = [[name, value] for name, value in values.items()]
    return markdown_table(header, rows, numeric=False)


def summary_lines(report: InstructionReport) -> list[str]:
    """State bearer_mw against raw-get for each interface that ran both."""
    lines = []
    for interface in dict.fromkeys(counts.interface for counts in report.variants):
        bearer_mw = report.find(interface, BEARER_MW)
        raw_get = report.find(interface, RAW_GET)
        if bearer_mw is None or raw_get is None:
            continue
        ratio = bearer_mw.median() / raw_get.median()
        difference = bearer_mw.median() - raw_get.median()
        lines.append(
            f"- {interface}: bearer_mw / raw-get = {ratio:.3f}, "
            f"bearer_mw - raw-get = {format_signed(difference)} instructions per "
            "request"
        )
    return lines


def render_markdown(report: InstructionReport) -> str:
    header = [
        "variant",
        "instructions per request",
        "ratio to raw-get",
        "minus raw-get",
        "minus bare",
    ]
    if report.repeats > 1:
        header.append("spread of repeats")
    rows = [variant_row(report, counts) for counts in report.variants]
    lines = [
        "# Instructions per request",
        "",
        f"Command: `{report.command}`",
        "",
        *markdown_table(header, rows),
        "",
        *summary_lines(report),
        "",
        "Each figure is the difference of the callgrind instruction totals of a "
        "run with the long and a run with the short request count, divided by the "
        "difference of the counts, so start-up, imports and warm-up cancel. It "
        "covers everything in the Python process: the in-process driver that "
        "builds the environ or scope, the app, bearer_mw, redis-py and hiredis. "
        "The kernel and Redis are not counted. The bare variant is the driver's "
        "own cost plus a response.",
        "",
        "## Settings",
        "",
        *text_table(["setting", "value"], report.settings),
        "",
        "## Versions",
        "",
        *text_table(["software", "version"], report.versions),
        "",
    ]
    return "\n".join(lines)


def report_json(report: InstructionReport) -> dict[str, Any]:
    variants = []
    for counts in report.variants:
        variants.append(
            {
                "name": counts.name,
                "description": counts.description,
                "short_requests": counts.short_requests,
                "long_requests": counts.long_requests,
                "short_totals": counts.short_totals,
                "long_totals": counts.long_totals,
                "per_request": counts.per_request(),
                "median_per_request": counts.median(),
            }
        )
    return {
        "command": report.command,
        "settings": report.settings,
        "versions": report.versions,
        "variants": variants,
    }
