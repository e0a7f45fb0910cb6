"""Instruction counts of the benchmark harness: arithmetic, tables and one real run.

Only the last test runs valgrind. It is skipped when valgrind is not on PATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import callgrind
from benchmarks.apps import asgi, wsgi
from benchmarks.instruction_options import DEFAULT_VARIANTS, parse_variants
from benchmarks.instruction_report import (
    InstructionReport,
    VariantCounts,
    per_request_instructions,
    render_markdown,
    report_json,
)
from benchmarks.instructions import child_environment
from benchmarks.processes import Supervisor
from benchmarks.request_loop import (
    AUTHORIZATION_ENV,
    UnexpectedStatusError,
    asgi_scope,
    call_asgi,
    call_wsgi,
    wsgi_environ,
)
from benchmarks.variants import VARIANTS_BY_NAME

REPOSITORY = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:1/0"
TOKENS = {"bearer_mw": "bearer-token", "raw": "raw-token"}


def counts(name: str, short_totals: list[int], long_totals: list[int]) -> VariantCounts:
    return VariantCounts(name, "", 100, 200, short_totals, long_totals)


def report_of(*variants: VariantCounts) -> InstructionReport:
    return InstructionReport(
        command="python -m benchmarks.instructions",
        settings={"requests (short run, long run)": "100, 200"},
        versions={"valgrind": "valgrind-3.19.0"},
        variants=list(variants),
    )


def table_rows(markdown: str) -> dict[str, list[str]]:
    """Return the cells of each variant row of the main table, by variant name."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


# The difference arithmetic


@pytest.mark.parametrize(
    ("short_total", "long_total", "short_requests", "long_requests", "expected"),
    [
        pytest.param(1_000_000, 1_500_000, 100, 200, 5_000.0, id="twice-the-requests"),
        pytest.param(1_000_000, 1_000_001, 100, 200, 0.01, id="tiny-difference"),
        pytest.param(7_000, 10_000, 1, 4, 1_000.0, id="three-extra-requests"),
    ],
)
def test_per_request_instructions_divides_difference(
    short_total: int,
    long_total: int,
    short_requests: int,
    long_requests: int,
    expected: float,
) -> None:
    result = per_request_instructions(
        short_total, long_total, short_requests, long_requests
    )

    assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("short_total", "long_total", "short_requests", "long_requests", "message"),
    [
        pytest.param(1_000, 2_000, 200, 200, "more requests", id="equal-requests"),
        pytest.param(1_000, 2_000, 200, 100, "more requests", id="fewer-requests"),
        pytest.param(2_000, 2_000, 100, 200, "not positive", id="equal-totals"),
        pytest.param(2_000, 1_000, 100, 200, "not positive", id="smaller-total"),
    ],
)
def test_per_request_instructions_rejects(
    short_total: int,
    long_total: int,
    short_requests: int,
    long_requests: int,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        per_request_instructions(short_total, long_total, short_requests, long_requests)


def test_variant_counts_median_and_spread() -> None:
    variant = counts("wsgi:bearer_mw", [1_000, 1_000, 1_000], [11_000, 12_000, 13_000])

    assert variant.per_request() == [100.0, 110.0, 120.0]
    assert variant.median() == 110.0
    assert variant.spread() == pytest.approx(20 / 110)


def test_variant_counts_unpaired_totals_rejected() -> None:
    variant = counts("wsgi:bearer_mw", [1_000, 1_000], [11_000])

    with pytest.raises(ValueError, match="shorter"):
        variant.per_request()


# The tables


def test_render_markdown_compares_with_raw_get_and_bare() -> None:
    report = report_of(
        counts("wsgi:bare", [0], [2_000_000]),
        counts("wsgi:raw-get", [0], [10_000_000]),
        counts("wsgi:bearer_mw", [0], [12_000_000]),
    )

    markdown = render_markdown(report)
    rows = table_rows(markdown)

    assert rows["wsgi:bare"] == ["20,000", "0.200", "-80,000", "+0"]
    assert rows["wsgi:raw-get"] == ["100,000", "1.000", "+0", "+80,000"]
    assert rows["wsgi:bearer_mw"] == ["120,000", "1.200", "+20,000", "+100,000"]
    assert "- wsgi: bearer_mw / raw-get = 1.200, bearer_mw - raw-get = +20,000" in (
        markdown
    )
    assert "Command: `python -m benchmarks.instructions`" in markdown
    assert "| valgrind | valgrind-3.19.0 |" in markdown
    assert "spread" not in markdown


def test_render_markdown_keeps_interfaces_apart() -> None:
    report = report_of(
        counts("wsgi:raw-get", [0], [10_000_000]),
        counts("asgi:raw-get", [0], [20_000_000]),
        counts("asgi:bearer_mw", [0], [30_000_000]),
    )

    markdown = render_markdown(report)
    rows = table_rows(markdown)

    assert rows["asgi:bearer_mw"][1:3] == ["1.500", "+100,000"]
    assert "- asgi: bearer_mw / raw-get = 1.500" in markdown
    assert "- wsgi:" not in markdown


def test_render_markdown_without_baselines_shows_dashes() -> None:
    report = report_of(counts("asgi:bearer_mw", [0], [30_000_000]))

    rows = table_rows(render_markdown(report))

    assert rows["asgi:bearer_mw"] == ["300,000", "-", "-", "-"]


def test_render_markdown_repeats_add_spread_column() -> None:
    report = report_of(
        counts("wsgi:raw-get", [0, 0], [10_000_000, 10_000_000]),
        counts("wsgi:bearer_mw", [0, 0], [12_000_000, 12_120_000]),
    )

    markdown = render_markdown(report)
    rows = table_rows(markdown)

    assert "spread of repeats" in markdown
    assert rows["wsgi:raw-get"][-1] == "0.000%"
    assert rows["wsgi:bearer_mw"][0] == "120,600"
    assert rows["wsgi:bearer_mw"][-1] == "0.995%"


def test_report_json_keeps_totals_and_figures() -> None:
    report = report_of(counts("wsgi:raw-get", [1_000, 2_000], [11_000, 12_000]))

    data = json.loads(json.dumps(report_json(report)))

    (variant,) = data["variants"]
    assert variant["name"] == "wsgi:raw-get"
    assert variant["short_totals"] == [1_000, 2_000]
    assert variant["long_totals"] == [11_000, 12_000]
    assert variant["per_request"] == [100.0, 100.0]
    assert variant["median_per_request"] == 100.0
    assert data["command"] == "python -m benchmarks.instructions"


# Options and child environments


def test_parse_variants_keeps_order_without_duplicates() -> None:
    variants = parse_variants("asgi:bearer_mw, wsgi:bare,asgi:bearer_mw")

    assert [variant.name for variant in variants] == ["asgi:bearer_mw", "wsgi:bare"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("wsgi:flask-httpauth", id="peer-variant"),
        pytest.param("wsgi:bearer_mw-revoked", id="needs-more-seeding"),
        pytest.param("http:bare", id="unknown"),
        pytest.param(" , ", id="empty"),
    ],
)
def test_parse_variants_rejects(text: str) -> None:
    with pytest.raises(SystemExit):
        parse_variants(text)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("wsgi:bare", "Bearer bearer-token", id="bare"),
        pytest.param("wsgi:raw-get", "Bearer raw-token", id="raw-get"),
        pytest.param("asgi:bearer_mw", "Bearer bearer-token", id="bearer_mw"),
        pytest.param("asgi:bearer_mw-missing", None, id="missing"),
        pytest.param("wsgi:bearer_mw-malformed", "Bearer !earer-token", id="malformed"),
    ],
)
def test_child_environment_sets_header(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str | None
) -> None:
    monkeypatch.setenv(AUTHORIZATION_ENV, "Bearer inherited")

    env = child_environment(VARIANTS_BY_NAME[name], REDIS_URL, TOKENS)

    assert env.get(AUTHORIZATION_ENV) == expected
    assert env["PYTHONHASHSEED"] == "0"
    assert env["BENCH_REDIS_URL"] == REDIS_URL
    assert env["BENCH_APP"] == VARIANTS_BY_NAME[name].app.app_id


def test_default_variants_cover_both_interfaces() -> None:
    assert len(DEFAULT_VARIANTS) == 10
    assert all(name in VARIANTS_BY_NAME for name in DEFAULT_VARIANTS)


# The in-process drivers, with apps that need no Redis


def test_call_wsgi_bare_app_passes() -> None:
    call_wsgi(wsgi.bare_app, wsgi_environ("Bearer token"), 3, frozenset({200}))


def test_call_wsgi_unexpected_status_raises() -> None:
    with pytest.raises(UnexpectedStatusError, match="status 200, expected 401"):
        call_wsgi(wsgi.bare_app, wsgi_environ(None), 1, frozenset({401}))


def test_call_asgi_bare_app_passes() -> None:
    scope = asgi_scope("Bearer token")

    asyncio.run(call_asgi(asgi.bare_app, scope, 3, frozenset({200})))

    assert (b"authorization", b"Bearer token") in scope["headers"]


def test_call_asgi_unexpected_status_raises() -> None:
    with pytest.raises(UnexpectedStatusError, match="status 200, expected 401"):
        asyncio.run(call_asgi(asgi.bare_app, asgi_scope(None), 1, frozenset({401})))


# Running children and reading callgrind output


def test_read_total_instructions_reads_summary(tmp_path: Path) -> None:
    output_path = tmp_path / "callgrind.out"
    output_path.write_text("version: 1\nevents: Ir\nfn=main\n1 5\nsummary: 12345\n")

    assert callgrind.read_total_instructions(output_path) == 12345


def test_read_total_instructions_missing_summary_raises(tmp_path: Path) -> None:
    output_path = tmp_path / "callgrind.out"
    output_path.write_text("version: 1\nevents: Ir\n")

    with pytest.raises(RuntimeError, match="no summary line"):
        callgrind.read_total_instructions(output_path)


def test_run_jobs_failed_job_raises_with_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    jobs = [
        callgrind.Job("ok", ["true"], dict(os.environ)),
        callgrind.Job("failing", ["sh", "-c", "echo broken; exit 3"], dict(os.environ)),
    ]

    with pytest.raises(RuntimeError, match=r"failing exited with status 3:\nbroken"):
        callgrind.run_jobs(supervisor, jobs, parallel=2)

    assert supervisor.stop_all() == []


# A whole run under valgrind


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not on PATH")
@pytest.mark.timeout(300)
@pytest.mark.usefixtures("redis_installed")
def test_instructions_command_writes_table(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    command = [
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--requests", "2",
        "--warmup", "1",
        "--jobs", "2",
        "--variants", "wsgi:raw-get,wsgi:bearer_mw",
        "--results-dir", str(results_dir),
    ]  # fmt: skip

    completed = subprocess.run(
        command,
        cwd=REPOSITORY,
        env={**os.environ, "TMPDIR": str(temp_dir)},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    data = json.loads((results_dir / "instructions.json").read_text())
    figures = {variant["name"]: variant["per_request"] for variant in data["variants"]}
    assert set(figures) == {"wsgi:raw-get", "wsgi:bearer_mw"}
    assert all(figure > 0 for values in figures.values() for figure in values)
    markdown = (results_dir / "instructions.md").read_text()
    assert "- wsgi: bearer_mw / raw-get = " in markdown
    assert "- wsgi: bearer_mw / raw-get = " in completed.stdout
    assert list(temp_dir.iterdir()) == []
