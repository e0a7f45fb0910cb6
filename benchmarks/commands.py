"""The work behind each command: run, soak and docs."""

from __future__ import annotations

import logging
from pathlib import Path

from benchmarks.docs_page import write_docs_page
from benchmarks.external import run_external
from benchmarks.options import Options, SoakOptions
from benchmarks.plots import write_plots
from benchmarks.report import render_results_page
from benchmarks.results import load_result, save_result
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
    return 0


def rewrite_docs(results_dir: Path) -> int:
    try:
        result = load_result(results_dir)
    except FileNotFoundError:
        logger.error("no saved run in %s; run python -m benchmarks first", results_dir)
        return 1
    logger.info("rewrote %s", write_docs_page(result, results_dir))
    return 0


def soak(options: SoakOptions) -> int:
    result = run_soak(options)
    logger.info("wrote %s", save_soak(result, options.results_dir))
    print(render_soak(result))
    return 1 if result.unexpected or result.socket_errors else 0
