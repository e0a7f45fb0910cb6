"""Child processes that the harness starts, and the cleanup that stops them.

Every child runs in its own session, so it is also its own process group. Stopping a
child signals that group, which reaches the workers that gunicorn forks. Ctrl-C
reaches only the harness, which then stops its children in reverse start order.
On Linux each child also receives SIGTERM when the harness dies, even by SIGKILL.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5.0
TERMINATION_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Option number of prctl(2) from <linux/prctl.h>.
PR_SET_PDEATHSIG = 1

# Handler as signal.signal accepts and returns it: a function, SIG_DFL, SIG_IGN,
# or None for a handler that was not installed from Python.
SignalHandler = Callable[[int, FrameType | None], Any] | int | None
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
                # Python code between fork and exec can deadlock on a lock that
                # another thread held at the fork. The harness starts children
                # only from its main thread while no other thread runs.
                preexec_fn=terminate_with_parent(),  # noqa: PLW1509
            )
        child = Child(name, process, log_path, cpu if command != list(argv) else None)
        self.children.append(child)
        logger.debug("started %s (pid %d): %s", name, process.pid, " ".join(command))
        return child

    def stop(self, child: Child) -> bool:
        """Stop the child's process group and return True if none of it is left.

        A child that is still running stays in ``children``, so ``stop_all``
        tries again.
        """
        try:
            stopped = stop_process_group(child.process)
        except (OSError, subprocess.SubprocessError) as exc:
            logger.error("stopping %s (pid %d) failed: %s", child.name, child.pid, exc)
            stopped = False
        if stopped and child in self.children:
            self.children.remove(child)
        return stopped

    def stop_all(self) -> list[Child]:
        """Stop every child, newest first, and return those still running.

        SIGINT, SIGTERM and SIGHUP are ignored meanwhile, so a second Ctrl-C cannot
        cut the cleanup short and leave children running.
        """
        with termination_signals_ignored():
            for child in reversed(list(self.children)):
                self.stop(child)
        return list(self.children)


def pin_command(argv: Sequence[str], cpu: int | None) -> list[str]:
    """Prefix ``taskset -c CPU`` when taskset exists and the core is usable."""
    if cpu is None or shutil.which("taskset") is None:
        return list(argv)
    if cpu not in os.sched_getaffinity(0):
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


@functools.cache
def load_libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def terminate_with_parent() -> Callable[[], None] | None:
    """Return a ``preexec_fn`` that makes the child receive SIGTERM when the harness
    dies, or None outside Linux.

    Without it a SIGKILL of the harness would leave every child running, because
    each child is in its own session and no terminal signal reaches it.
    """
    if not sys.platform.startswith("linux"):
        # NOTE: outside Linux, a SIGKILL of the harness leaves its children running.
        return None
    libc = load_libc()
    parent_pid = os.getpid()

    def set_parent_death_signal() -> None:
        # The child inherits SIG_IGN from a harness that is already cleaning up,
        # and exec keeps it, so SIGTERM is reset to its default action first.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # NOTE: Linux sends the signal when the thread that started the child
        # exits, so children must be started from a thread that lives as long as
        # the harness (the main thread does).
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            message = f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}"
            raise OSError(errno, message)
        # If the harness died before prctl ran, no signal will come.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


def stop_process_group(process: subprocess.Popen[bytes]) -> bool:
    """Send SIGTERM to the child's process group, then SIGKILL after a timeout.

    Returns True if no process of the group is left. Members that outlive the
    group leader, such as workers of a gunicorn master that crashed, get SIGKILL.
    """
    pgid = process.pid
    if process.poll() is None:
        signal_group(pgid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d ignored SIGTERM, sending SIGKILL", pgid)
            signal_group(pgid, signal.SIGKILL)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                logger.error("pid %d is still running after SIGKILL", pgid)
                return False
    if not live_group_pids(pgid):
        return True
    signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not live_group_pids(pgid):
            return True
        time.sleep(0.05)
    left = live_group_pids(pgid)
    logger.error("processes %s of group %d are still running after SIGKILL", left, pgid)
    return not left


def signal_group(pgid: int, signum: signal.Signals) -> None:
    """Send ``signum`` to the process group. A group that is gone is no error."""
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def live_group_pids(pgid: int) -> list[int]:
    """Return the ids of processes in the group that are neither zombies nor dead.

    A zombie whose parent died waits for init, which may never reap it in a
    container, so it does not count as running.
    """
    live = []
    for pid in group_pids(pgid):
        fields = read_stat_fields(pid)
        if fields is not None and fields[0] not in {"Z", "X"}:
            live.append(pid)
    return live


def restore_handlers(previous: Mapping[signal.Signals, SignalHandler]) -> None:
    for signum, handler in previous.items():
        # None is a handler that was not installed from Python, and the
        # default action is the nearest one that Python can set.
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextmanager
def termination_signals_ignored() -> Iterator[None]:
    """Ignore SIGINT, SIGTERM and SIGHUP in the block, so cleanup runs to its end.

    Outside the main thread Python cannot set handlers, and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signum: signal.signal(signum, signal.SIG_IGN) for signum in TERMINATION_SIGNALS
    }
    try:
        yield
    finally:
        restore_handlers(previous)


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt, so cleanup code runs.

    The first of these signals raises KeyboardInterrupt and makes the block ignore
    the rest, so a second Ctrl-C cannot interrupt the cleanup. SIGINT is included
    because a shell starts background jobs with SIGINT ignored, and Python then
    installs no handler of its own for it.
    """

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        for ignored in TERMINATION_SIGNALS:
            signal.signal(ignored, signal.SIG_IGN)
        raise KeyboardInterrupt(f"received signal {signum}")

    previous = {
        signum: signal.signal(signum, raise_interrupt) for signum in TERMINATION_SIGNALS
    }
    try:
        yield
    finally:
        restore_handlers(previous)


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
