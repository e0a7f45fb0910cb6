"""Child processes that the harness starts, and the cleanup that stops them.

Every child runs in its own session, so it is also its own process group. Stopping a
child signals that group, which reaches the workers that gunicorn forks. Ctrl-C
reaches only the harness, which then stops its children in reverse start order.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5.0
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PAGE_SIZE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Child:
    """A started process, its log file and the CPU core it is pinned to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    cpu: int | None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, max_chars: int = 2000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-max_chars:]


@dataclass
class Supervisor:
    """Start children and stop every one of them, including on errors and Ctrl-C."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpu: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        command = pin_command(argv, cpu)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        child = Child(name, process, log_path, cpu if command != list(argv) else None)
        self.children.append(child)
        logger.debug("started %s (pid %d): %s", name, process.pid, " ".join(command))
        return child

    def stop(self, child: Child) -> None:
        stop_process_group(child.process)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        while self.children:
            self.stop(self.children[-1])


def pin_command(argv: Sequence[str], cpu: int | None) -> list[str]:
    """Prefix ``taskset -c CPU`` when taskset exists and the core is usable."""
    if cpu is None or shutil.which("taskset") is None:
        return list(argv)
    if cpu not in os.sched_getaffinity(0):
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM to the child's process group, then SIGKILL after a timeout."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        logger.warning("pid %d ignored SIGTERM, sending SIGKILL", process.pid)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt, so cleanup code runs.

    SIGINT is included because a shell starts background jobs with SIGINT
    ignored, and Python then installs no handler of its own for it.
    """

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"received signal {signum}")

    previous = {
        signum: signal.signal(signum, raise_interrupt)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def free_loopback_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_http(child: Child, port: int, timeout: float = 30.0) -> None:
    """Wait until the child responds to an HTTP request on the loopback port.

    Any status line counts, because an app behind required authentication
    responds with 401 to this probe. Raises RuntimeError with the child's log tail
    if the child exits or the timeout passes.
    """
    deadline = time.monotonic() + timeout
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited with code {child.process.returncode} "
                f"before it responded:\n{child.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(request)
                if sock.recv(16).startswith(b"HTTP/1."):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"{child.name} did not respond on port {port} within {timeout:.0f} s:\n"
        f"{child.log_tail()}"
    )


def group_pids(pgid: int) -> list[int]:
    """Return the ids of live processes in the process group ``pgid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = read_stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def read_stat_fields(pid: int) -> list[str] | None:
    """Return the fields of /proc/PID/stat after the command name, or None.

    Index 0 is the state (field 3 in proc(5)), so utime (field 14) is index 11.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def group_cpu_seconds(pgid: int) -> float:
    """Return user plus system CPU seconds used so far by the live group members.

    The reaped children's time (cutime, cstime) is added too, so a worker that
    gunicorn restarted still counts through its master.
    """
    ticks = 0
    for pid in group_pids(pgid):
        fields = read_stat_fields(pid)
        if fields is not None:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS_PER_SECOND


def group_rss_bytes(pgid: int) -> dict[int, int]:
    """Return the resident set size in bytes of each live process in the group."""
    sizes = {}
    for pid in group_pids(pgid):
        try:
            resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        sizes[pid] = resident_pages * PAGE_SIZE_BYTES
    return sizes
