"""Run wrk or the Python load generator as a child process and parse its result."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmarks.processes import Supervisor

Generator = Literal["wrk", "python"]
WRK_SCRIPT = Path(__file__).with_name("wrk_requests.lua")
RESULT_PREFIX = "BENCH_RESULT "
REQUEST_TIMEOUT_SECONDS = 5
# Time allowed for a load generator to exit after its load duration.
EXIT_GRACE_SECONDS = 30


@dataclass
class LoadResult:
    """Figures of one load generator run, with latencies in milliseconds."""

    generator: Generator
    connections: int
    requests: int
    duration_s: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    # Requests sent but not counted when the generator stopped. wrk drops the
    # request in flight on each connection; the Python generator waits for it.
    unfinished: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def choose_generator(requested: str) -> Generator:
    """Return "wrk" if requested or found on PATH, else "python"."""
    if requested == "python":
        return "python"
    if shutil.which("wrk") is not None:
        return "wrk"
    if requested == "wrk":
        raise RuntimeError(
            "wrk was not found on PATH. Install it (Debian: apt-get install wrk) "
            "or pass --load-generator python."
        )
    return "python"


def load_command(
    generator: Generator, url: str, header_file: Path, connections: int, duration: float
) -> list[str]:
    if generator == "wrk":
        return [
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
            f"--timeout={REQUEST_TIMEOUT_SECONDS}s", "-s", str(WRK_SCRIPT),
            url, "--", str(header_file),
        ]  # fmt: skip
    return [
        sys.executable, "-m", "benchmarks.pyload", url, str(header_file),
        "--connections", str(connections), "--duration", str(duration),
        "--timeout", str(REQUEST_TIMEOUT_SECONDS),
    ]  # fmt: skip


def run_load(
    supervisor: Supervisor,
    generator: Generator,
    url: str,
    header_file: Path,
    *,
    connections: int,
    duration: float,
    cpu: int | None,
    name: str = "load",
) -> LoadResult:
    """Send load to ``url`` for ``duration`` seconds and return the parsed result.

    Raises RuntimeError if the generator fails or prints no result line.
    """
    argv = load_command(generator, url, header_file, connections, duration)
    cwd = Path(__file__).resolve().parent.parent
    child = supervisor.start(name, argv, cpu=cpu, cwd=cwd)
    try:
        child.process.wait(timeout=duration + EXIT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"{generator} did not exit within {EXIT_GRACE_SECONDS} s after its duration"
        ) from None
    finally:
        supervisor.stop(child)
    output = child.log_path.read_text(errors="replace")
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            return parse_result(
                generator, connections, json.loads(line.removeprefix(RESULT_PREFIX))
            )
    raise RuntimeError(
        f"{generator} exited with code {child.process.returncode} "
        f"and printed no result:\n{output[-2000:]}"
    )


def parse_result(
    generator: Generator, connections: int, data: dict[str, Any]
) -> LoadResult:
    latency = data["latency_us"]
    return LoadResult(
        generator=generator,
        connections=connections,
        requests=int(data["requests"]),
        duration_s=int(data["duration_us"]) / 1_000_000,
        statuses={
            int(status): int(count) for status, count in data["statuses"].items()
        },
        socket_errors={kind: int(count) for kind, count in data["errors"].items()},
        latency_mean_ms=float(latency["mean"]) / 1000,
        latency_p50_ms=float(latency["p50"]) / 1000,
        latency_p90_ms=float(latency["p90"]) / 1000,
        latency_p99_ms=float(latency["p99"]) / 1000,
        latency_max_ms=float(latency["max"]) / 1000,
        unfinished=connections if generator == "wrk" else 0,
    )
