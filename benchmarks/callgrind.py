"""Run child programs under callgrind, a few at a time, and read their totals.

Instruction counts do not depend on what else runs on the machine, so the
children may run in parallel. Each child is started through the run's
Supervisor, which stops it on errors and on Ctrl-C.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.processes import Child, Supervisor

logger = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 0.1
# A child that runs longer than this has hung, for example on a Redis reply.
# NOTE: sized for the default request counts, which take under a minute each
# under callgrind; far larger --requests may need more.
JOB_TIMEOUT_SECONDS = 900.0
# The line of a callgrind output file with the total of every event, which is
# only Ir (instructions executed) with the default options. "totals:" is the
# older name.
TOTAL_PREFIXES = ("summary:", "totals:")


@dataclass(frozen=True)
class Job:
    """A child program: its unique name, its command line and its environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]


def require_valgrind() -> str:
    executable = shutil.which("valgrind")
    if executable is None:
        raise RuntimeError(
            "valgrind was not found on PATH. Install it (Debian: apt-get install "
            "valgrind) to count instructions."
        )
    return executable


def valgrind_version() -> str:
    completed = subprocess.run(
        [require_valgrind(), "--version"], capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() or "unknown"


def callgrind_argv(
    argv: Sequence[str], output_path: Path, *, trace_children: bool = False
) -> list[str]:
    """Prefix ``argv`` with valgrind's callgrind tool writing to ``output_path``.

    ``trace_children`` also follows the processes that ``argv`` starts.
    """
    return [
        require_valgrind(),
        "--tool=callgrind",
        *(["--trace-children=yes"] if trace_children else []),
        f"--callgrind-out-file={output_path}",
        *argv,
    ]


def read_total_instructions(output_path: Path) -> int:
    """Return the instruction total that callgrind wrote to ``output_path``."""
    with output_path.open() as output:
        for line in output:
            if line.startswith(TOTAL_PREFIXES):
                return int(line.split()[1])
    raise RuntimeError(f"callgrind output {output_path} has no summary line")


def run_jobs(supervisor: Supervisor, jobs: Sequence[Job], parallel: int) -> None:
    """Run the jobs, at most ``parallel`` at once, and wait for all of them.

    Raises RuntimeError with the log tail of the first job that exits with a
    non-zero status or runs past JOB_TIMEOUT_SECONDS. The caller's Supervisor
    stops the jobs that are still running.
    """
    pending = list(jobs)
    running: dict[str, tuple[Child, float]] = {}
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            child = supervisor.start(job.name, job.argv, env=job.env)
            running[job.name] = (child, time.monotonic())
        time.sleep(POLL_INTERVAL_SECONDS)
        for name, (child, started) in list(running.items()):
            status = child.process.poll()
            if status is None:
                if time.monotonic() - started > JOB_TIMEOUT_SECONDS:
                    raise RuntimeError(
                        f"{name} did not finish within {JOB_TIMEOUT_SECONDS:.0f} s:\n"
                        f"{child.log_tail()}"
                    )
                continue
            del running[name]
            supervisor.stop(child)
            if status != 0:
                raise RuntimeError(
                    f"{name} exited with status {status}:\n{child.log_tail()}"
                )
            logger.debug("%s finished", name)
