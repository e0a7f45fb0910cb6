"""The work behind each command: run, soak and docs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks.docs_page import write_docs_page
from benchmarks.external import run_external
from benchmarks.measure import Measurement
from benchmarks.options import Options, SoakOptions
from benchmarks.plots import write_plots
from benchmarks.report import render_results_page
from benchmarks.results import RunResult, load_result, save_result
from benchmarks.runner import run_local
from benchmarks.soak import render_soak, run_soak, save_soak

logger = logging.getLogger(__name__)


def run(options: Options) -> int:
    """Measure, then write latest.json, latest.md, the plots and maybe the docs page."""
    result = run_external(options) if options.url else run_local(options)
    save_result(result, options.results_dir)
    page = options.results_dir / "latest.md"
    page.write_text(render_results_page(result))
    plots = write_plots(result, options.results_dir)
    logger.info(
        "wrote %s, %s and %d plots",
        options.results_dir / "latest.json",
        page,
        len(plots),
    )
    if options.write_docs:
        logger.info("rewrote %s", write_docs_page(result, options.results_dir))
    print(page.read_text())

    failed = failed_measurements(result)
    for name, measurement in failed:
        logger.warning(
            "%s at %d connections: %d unexpected statuses %s and %d socket errors",
            name,
            measurement.connections,
            measurement.unexpected_count,
            measurement.unexpected_statuses,
            measurement.socket_errors,
        )
    if failed:
        logger.error(
            "%d measurements had unexpected statuses or socket errors, so their "
            "figures do not describe working requests; rerun with --keep-logs to "
            "keep the server logs",
            len(failed),
        )
        return 1
    return 0


def failed_measurements(result: RunResult) -> list[tuple[str, Measurement]]:
    """Return the name and figures of each measurement with unexpected statuses or
    socket errors.

    Statuses that a variant expects, such as 401 for a revoked token, are not
    unexpected, so those variants fail only on other statuses.
    """
    named: list[tuple[str, Measurement]] = [
        (m.variant, m) for m in [*result.comparison, *result.concurrency]
    ]
    for step in result.sessions:
        named += [
            (f"{m.variant} with {step.stored_sessions:,} sessions", m)
            for m in step.measurements
        ]
    for labeled in [*result.pools, *result.cluster]:
        measurement = labeled.measurement
        named.append((f"{measurement.variant} ({labeled.label})", measurement))
    return [(name, m) for name, m in named if m.unexpected_count or m.socket_errors]


def rewrite_docs(results_dir: Path) -> int:
    try:
        result = load_result(results_dir)
    except FileNotFoundError:
        logger.error("no saved run in %s; run python -m benchmarks first", results_dir)
        return 1
    logger.info("rewrote %s", write_docs_page(result, results_dir))
    return 0


def soak(options: SoakOptions) -> int:
    """Run the soak, write soak.json and soak.md, and return 1 on any failed request."""
    load_seconds = options.warmup_seconds + options.minutes * 60
    expected_end = datetime.now() + timedelta(seconds=load_seconds)
    logger.info(
        "soak of %s at %d connections for %g minutes; expected to end at about "
        "%s plus the seeding time, with progress every %.0f s",
        options.variant.name,
        options.connections,
        options.minutes,
        expected_end.strftime("%H:%M:%S"),
        options.chunk_seconds,
    )
    result = run_soak(options)
    logger.info("wrote %s", save_soak(result, options.results_dir))
    print(render_soak(result))
    return 1 if result.unexpected or result.socket_errors else 0
