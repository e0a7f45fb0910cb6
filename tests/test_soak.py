"""A short soak of the ASGI bearer_mw variant through the benchmark harness.

The harness starts its own redis-server and uvicorn on free loopback ports,
seeds sessions through ``SessionStore``, and loads the server for about half a
minute after a warm-up run. The test fails on any status other than 200, on
any socket error, and on RSS growth after the warm-up that points to a leak.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.options import SoakOptions
from benchmarks.soak import run_soak
from benchmarks.variants import VARIANTS_BY_NAME

pytestmark = pytest.mark.slow

WARMUP_SECONDS = 8.0
CHUNK_SECONDS = 9.0
CHUNKS = 3
CONNECTIONS = 16

# RSS may grow by at most this much between the end of the warm-up and the end
# of the run. With wrk on a 2-core machine the chunks served about 100,000
# requests, so a leak of about 80 bytes per request passes 8 MiB, and the
# slower Python generator still catches a few hundred bytes per request. The
# growth measured there was under 0.1 MiB, so noise leaves a wide margin.
MAX_RSS_GROWTH_BYTES = 8 * 2**20


@pytest.fixture
def soak_options(redis_installed: None, tmp_path: Path) -> SoakOptions:
    return SoakOptions(
        command="tests/test_soak.py",
        minutes=CHUNKS * CHUNK_SECONDS / 60,
        variant=VARIANTS_BY_NAME["asgi:bearer_mw"],
        connections=CONNECTIONS,
        seed_sessions=1000,
        redis_url=None,
        # wrk where installed, else the harness's Python load generator.
        generator="wrk" if shutil.which("wrk") else "python",
        # Unpinned, because a CI runner may offer cores that taskset cannot use.
        server_cpu=None,
        client_cpu=None,
        wsgi_threads=4,
        results_dir=tmp_path,
        keep_logs=False,
        warmup_seconds=WARMUP_SECONDS,
        chunk_seconds=CHUNK_SECONDS,
    )


@pytest.mark.timeout(180)
def test_soak_asgi_bearer_mw(soak_options: SoakOptions) -> None:
    result = run_soak(soak_options)

    assert len(result.chunks) == CHUNKS
    assert result.requests > 0
    assert all(chunk.requests > 0 for chunk in result.chunks)
    assert set(result.statuses) == {200}, result.statuses
    assert result.unexpected == 0
    assert result.socket_errors == 0

    assert result.rss_before_bytes > 0
    growth = result.rss_after_bytes - result.rss_before_bytes
    rss_by_chunk = [chunk.rss_bytes for chunk in result.chunks]
    assert growth < MAX_RSS_GROWTH_BYTES, (
        f"server RSS grew by {growth / 2**20:.1f} MiB after the warm-up, "
        f"from {result.rss_before_bytes} bytes; per chunk: {rss_by_chunk}"
    )
