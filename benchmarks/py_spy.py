"""Run py-spy: find it, check that it may attach, and record raw stacks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.processes import Child, Supervisor

SAMPLER_START_TIMEOUT_SECONDS = 15.0
SAMPLER_EXIT_GRACE_SECONDS = 30
PROBE_TIMEOUT_SECONDS = 30
SAMPLER_TOTALS = re.compile(r"Samples: ([0-9]+) Errors: ([0-9]+)")
PROBE_SCRIPT = "import time; print('ready', flush=True); time.sleep(60)"


class AttachError(RuntimeError):
    """Failure of an installed py-spy to read another process of this user."""


def find_py_spy() -> str:
    """Return the py-spy beside this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError(
            "py-spy was not found beside this Python or on PATH. Install it with "
            "pip install -e '.[bench]' or pip install py-spy."
        )
    return found


def ptrace_scope() -> str | None:
    try:
        return Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip()
    except OSError:
        return None


def wait_for_log_text(child: Child, text: str, timeout: float) -> None:
    """Wait until ``text`` appears in the child's log.

    Raises RuntimeError with the log's tail if the child exits first or the
    timeout passes.
    """
    deadline = time.monotonic() + timeout
    while text not in child.log_tail(max_chars=100_000):
        if child.process.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited with code {child.process.returncode}:\n"
                f"{child.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{child.name} did not print {text!r} within {timeout:.0f} s:\n"
                f"{child.log_tail()}"
            )
        time.sleep(0.05)


def check_can_attach(py_spy: str, supervisor: Supervisor) -> None:
    """Raise AttachError unless py-spy can read the stack of another child.

    The probe is a sibling of py-spy, as the servers are, so the same ptrace
    rules apply to it.
    """
    child = supervisor.start("py-spy-probe", [sys.executable, "-c", PROBE_SCRIPT])
    try:
        wait_for_log_text(child, "ready", PROBE_TIMEOUT_SECONDS)
        completed = subprocess.run(
            [py_spy, "dump", "--pid", str(child.pid)],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"py-spy dump of a test process timed out after {PROBE_TIMEOUT_SECONDS} s"
        ) from None
    finally:
        supervisor.stop(child)
    if completed.returncode == 0:
        return
    output = (completed.stderr or completed.stdout).strip().splitlines()
    scope = ptrace_scope()
    raise AttachError(
        f"py-spy cannot attach to a process of this user: py-spy dump exited with "
        f"code {completed.returncode}"
        + (f" ({output[-1]})" if output else "")
        + ("" if scope is None else f", and kernel.yama.ptrace_scope is {scope}")
        + ". Run as root, give the process CAP_SYS_PTRACE (docker run --cap-add "
        "SYS_PTRACE), or set kernel.yama.ptrace_scope to 0."
    )


def start_record(
    supervisor: Supervisor,
    py_spy: str,
    pid: int,
    output: Path,
    *,
    rate: int,
    seconds: int,
    cpu: int | None,
) -> Child:
    """Start ``py-spy record`` of raw stacks on ``pid`` and wait until it samples.

    py-spy samples in its default blocking mode, which pauses the process for
    each sample, and with ``--gil``, so only the thread holding the GIL counts.
    """
    argv = [
        py_spy, "record", "--pid", str(pid), "--format", "raw",
        "--output", str(output), "--rate", str(rate),
        "--duration", str(seconds), "--gil",
    ]  # fmt: skip
    child = supervisor.start(output.stem, argv, cpu=cpu)
    wait_for_log_text(child, "Sampling process", SAMPLER_START_TIMEOUT_SECONDS)
    return child


def finish_record(
    child: Child, output: Path, seconds: int
) -> tuple[int | None, int | None]:
    """Wait for py-spy to write ``output``, then return its sample and error totals.

    The totals are None when py-spy printed none.
    """
    timeout = seconds + SAMPLER_EXIT_GRACE_SECONDS
    try:
        child.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"py-spy did not exit within {timeout} s") from None
    log = child.log_tail()
    if child.process.returncode != 0 or not output.exists():
        written = "a" if output.exists() else "no"
        raise RuntimeError(
            f"py-spy exited with code {child.process.returncode} and wrote "
            f"{written} raw file:\n{log}"
        )
    totals = SAMPLER_TOTALS.search(log)
    if totals is None:
        return None, None
    return int(totals[1]), int(totals[2])


def py_spy_version(py_spy: str) -> str:
    completed = subprocess.run(
        [py_spy, "--version"], capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() or "unknown"
