"""The arithmetic and table of the whole-server instruction counts."""

from __future__ import annotations

from benchmarks.server_instructions import LONG_RUN_FACTOR, ServerCount, render


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
