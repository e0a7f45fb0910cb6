"""The arithmetic and table of the whole-server instruction counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.docs_page import server_instructions_sections
from benchmarks.server_instructions import LONG_RUN_FACTOR, ServerCount, main, render


def test_server_count_per_request() -> None:
    count = ServerCount("wsgi:raw-get", 1_000_000, 1_000_000 + 400 * 800, 200)

    assert LONG_RUN_FACTOR == 3
    assert count.per_request == 800


def test_render_predicts_ratio_against_raw_get() -> None:
    counts = [
        ServerCount("asgi:raw-get", 0, 930 * 400, 200),
        ServerCount("asgi:bearer_mw", 0, 1000 * 400, 200),
        ServerCount("wsgi:bearer_mw", 0, 1000 * 400, 200),
    ]

    page = render(counts, "python -m benchmarks.server_instructions", "start")

    assert "| `asgi:raw-get` | 930 | 1.000 |" in page
    assert "| `asgi:bearer_mw` | 1,000 | 0.930 |" in page
    # No WSGI raw-get row, so nothing to compare the WSGI row with.
    assert "| `wsgi:bearer_mw` | 1,000 | - |" in page


def test_render_repeats_show_median_and_range() -> None:
    counts = [
        ServerCount("wsgi:raw-get", 0, 900 * 400, 200),
        ServerCount("wsgi:bearer_mw", 0, 1010 * 400, 200),
        ServerCount("wsgi:raw-get", 0, 960 * 400, 200),
        ServerCount("wsgi:bearer_mw", 0, 1000 * 400, 200),
        ServerCount("wsgi:raw-get", 0, 950 * 400, 200),
        ServerCount("wsgi:bearer_mw", 0, 1020 * 400, 200),
    ]

    page = render(counts, "python -m benchmarks.server_instructions", "start")

    assert "range of repeats (count)" in page
    assert "| `wsgi:raw-get` | 950 | 1.000 | 900-960 (3) |" in page
    assert "| `wsgi:bearer_mw` | 1,010 | 0.941 | 1,000-1,020 (3) |" in page


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--variants", "asgi:nope"], id="unknown-variant"),
        pytest.param(["--variants", ","], id="no-variant"),
        pytest.param(["--repeats", "0"], id="no-repeat"),
        pytest.param(["--requests", "0"], id="no-request"),
    ],
)
def test_main_rejects_bad_arguments(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_docs_page_embeds_server_count(tmp_path: Path) -> None:
    counts = [
        ServerCount("wsgi:raw-get", 0, 950 * 400, 200),
        ServerCount("wsgi:bearer_mw", 0, 1000 * 400, 200),
    ]
    page = render(counts, "python -m benchmarks.server_instructions", "start")
    (tmp_path / "server_instructions.md").write_text(page)

    sections = server_instructions_sections(tmp_path)

    assert sections[0] == "## Server instructions per request"
    assert "# Server instructions per request" not in sections[2]
    assert "| `wsgi:bearer_mw` | 1,000 | 0.950 |" in sections[2]


def test_docs_page_without_server_count(tmp_path: Path) -> None:
    assert server_instructions_sections(tmp_path) == []
