"""PNG plots of a run, drawn through matplotlib's Figure API without pyplot.

A Figure that is not attached to pyplot renders with the Agg canvas, so the plots
need no display and no global backend setting.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks.measure import Measurement
from benchmarks.results import RunResult
from benchmarks.suites import SessionsStep

DPI = 110


def write_plots(result: RunResult, results_dir: Path) -> list[Path]:
    """Draw every plot that the run has figures for, and return the files written."""
    results_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if result.comparison:
        path = results_dir / "comparison.png"
        plot_comparison(result.comparison).savefig(path, dpi=DPI)
        written.append(path)
    if result.concurrency:
        path = results_dir / "concurrency.png"
        plot_concurrency(result.concurrency).savefig(path, dpi=DPI)
        written.append(path)
    if result.sessions:
        path = results_dir / "sessions.png"
        plot_sessions(result.sessions).savefig(path, dpi=DPI)
        written.append(path)
    return written


def interface_of(variant: str) -> str:
    return variant.split(":", 1)[0] if ":" in variant else "other"


def plot_comparison(measurements: list[Measurement]) -> Figure:
    """Draw req/s and server CPU per request as bars, one row per interface.

    CPU per request is drawn too because it varies less than req/s when other
    processes share the server's core.
    """
    interfaces = list(dict.fromkeys(interface_of(m.variant) for m in measurements))
    figure = Figure(figsize=(12, 3.4 * len(interfaces) + 0.6), layout="constrained")
    axes = figure.subplots(len(interfaces), 2, squeeze=False)
    for row, interface in enumerate(interfaces):
        chosen = [m for m in measurements if interface_of(m.variant) == interface]
        names = [m.variant.split(":", 1)[-1] for m in chosen]
        rate_axis, cpu_axis = axes[row]
        bars = rate_axis.barh(names, [m.requests_per_second for m in chosen])
        rate_axis.set_title(
            f"{interface.upper()}: requests per second, p99 ms at bar end"
        )
        for bar, measurement in zip(bars, chosen, strict=True):
            end = (bar.get_width(), bar.get_y() + bar.get_height() / 2)
            label = f" {measurement.latency_p99_ms:.1f}"
            rate_axis.annotate(label, end, va="center", fontsize=8)
        cpu = [m.server_cpu_us_per_request or 0.0 for m in chosen]
        cpu_axis.barh(names, cpu, color="#dd8452")
        cpu_axis.set_title(f"{interface.upper()}: server CPU per request (us)")
        cpu_axis.set_yticklabels([])
        for axis in (rate_axis, cpu_axis):
            axis.invert_yaxis()
            axis.grid(axis="x", alpha=0.3)
    return figure


def plot_concurrency(measurements: list[Measurement]) -> Figure:
    """Draw requests per second and p99 latency against concurrent connections."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    rate_axis, latency_axis = figure.subplots(1, 2)
    for variant in dict.fromkeys(m.variant for m in measurements):
        points = sorted(
            (m for m in measurements if m.variant == variant),
            key=lambda m: m.connections,
        )
        connections = [m.connections for m in points]
        style = "--" if variant.startswith("wsgi") else "-"
        rates = [m.requests_per_second for m in points]
        latencies = [m.latency_p99_ms for m in points]
        rate_axis.plot(connections, rates, style, marker="o", label=variant)
        latency_axis.plot(connections, latencies, style, marker="o", label=variant)
    label_axis(rate_axis, "concurrent connections", "requests per second")
    label_axis(latency_axis, "concurrent connections", "p99 latency (ms)")
    levels = sorted({m.connections for m in measurements})
    for axis in (rate_axis, latency_axis):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, labels=[str(level) for level in levels])
    latency_axis.set_yscale("log")
    return figure


def plot_sessions(steps: list[SessionsStep]) -> Figure:
    """Draw req/s, server CPU per request and Redis memory against stored sessions."""
    figure = Figure(figsize=(14, 4), layout="constrained")
    rate_axis, cpu_axis, memory_axis = figure.subplots(1, 3)
    counts = [step.stored_sessions for step in steps]
    variants = dict.fromkeys(m.variant for step in steps for m in step.measurements)
    for variant in variants:
        found = [measurement_at(step, variant) for step in steps]
        rates = [m.requests_per_second if m else math.nan for m in found]
        cpu = [m.server_cpu_us_per_request if m else None for m in found]
        rate_axis.plot(counts, rates, marker="o", label=variant)
        cpu_axis.plot(
            counts,
            [math.nan if c is None else c for c in cpu],
            marker="o",
            label=variant,
        )
    session_bytes = [step.bearer_mw_bytes_per_session for step in steps]
    record_bytes = [step.raw_bytes_per_record for step in steps]
    memory_axis.plot(counts, session_bytes, marker="o", label="bearer_mw session")
    memory_axis.plot(counts, record_bytes, marker="o", label="raw-get record")
    label_axis(rate_axis, "stored sessions", "requests per second")
    label_axis(cpu_axis, "stored sessions", "server CPU per request (us)")
    label_axis(memory_axis, "stored sessions", "used_memory growth per session (bytes)")
    for axis in (rate_axis, cpu_axis, memory_axis):
        axis.set_xscale("log")
        axis.set_ylim(bottom=0)
    return figure


def measurement_at(step: SessionsStep, variant: str) -> Measurement | None:
    for measurement in step.measurements:
        if measurement.variant == variant:
            return measurement
    return None


def label_axis(axis: Axes, x_label: str, y_label: str) -> None:
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
