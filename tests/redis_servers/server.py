"""A single redis-server process on a free loopback port, and shared helpers.

Every process listens on 127.0.0.1 only, on a port that was free when it
started, and keeps its files in its own temporary directory. ``close()`` ends
the process and removes the directory. An ``atexit`` hook closes every server
that a test run left open, so only a hard kill of Python can leak processes.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"

# Timeouts in seconds. They are far above the times measured on a two-core
# machine (0.1 s per server) to leave room for a loaded CI machine.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# How many ports start() tries when other processes bind them first.
PORT_ATTEMPTS = 5
LOG_TAIL_LINES = 25

MISSING_BINARY_HINT = (
    "{} not found on PATH; install Redis, for example with "
    "'apt-get install redis-server redis-tools'"
)

Address = tuple[str, int]


class RedisServerError(RuntimeError):
    """A Redis process failed to start or stop, or never reached a waited state."""


class _PortInUseError(RedisServerError):
    pass


def missing_binaries(*names: str) -> list[str]:
    """Return the names of the given programs that are not on ``PATH``."""
    return [name for name in names if shutil.which(name) is None]


def free_port() -> int:
    """Return a loopback TCP port that is free now.

    Another process may bind the port before the caller does, so callers retry.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool],
    description: str,
    timeout: float,
    details: Callable[[], str] | None = None,
) -> None:
    """Call ``condition`` every 0.1 s until it returns True or ``timeout`` passes.

    Redis and socket errors count as "not yet", because a server that is
    starting, stopping or failing over refuses connections for a while. On
    timeout the error names the last such error and the text from ``details``.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError) as error:
            last_error = error

        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:.0f} s waiting until {description}"
            if last_error is not None:
                message += f" (last error: {last_error!r})"
            if details is not None:
                message += "\n" + details()
            raise RedisServerError(message)

        time.sleep(0.1)


def direct_client(address: Address) -> redis.Redis:
    """Return a client that does not retry, because wait_until() polls instead.

    redis-py's default retries with backoff add seconds to each refused
    connection while a server starts.
    """
    return redis.Redis(
        host=address[0],
        port=address[1],
        socket_timeout=5,
        socket_connect_timeout=5,
        decode_responses=True,
        retry=Retry(NoBackoff(), retries=0),
    )


def execute(address: Address, *args: str | int) -> Any:
    """Send one command on a new connection and return the parsed reply."""
    with direct_client(address) as client:
        return client.execute_command(*args)


def replication_info(address: Address) -> dict[str, Any]:
    reply = execute(address, "INFO", "replication")
    if not isinstance(reply, dict):
        raise RedisServerError(f"INFO replication on {address} returned {reply!r}")
    return reply


# Servers that may still have a process or a directory, for the atexit hook.
_open_servers: set[RedisServer] = set()


@atexit.register
def _close_open_servers() -> None:
    for server in list(_open_servers):
        server.close()


class RedisServer:
    """One redis-server process on a free loopback port, without persistence.

    ``stop()`` and ``kill()`` end the process but keep its port and directory,
    so a later ``start()`` brings the same server back on the same port.
    ``close()`` also removes the directory. With ``replica_of`` the server
    starts as a replica of that server or address.
    """

    def __init__(
        self,
        *,
        replica_of: RedisServer | Address | None = None,
        extra_args: Sequence[str] = (),
        name: str = "redis",
    ) -> None:
        self.replica_of = replica_of
        self.extra_args = tuple(extra_args)
        self.name = name
        self._port: int | None = None
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} port={self._port}>"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RedisServerError(f"{self.name} has no port until start() is called")
        return self._port

    @property
    def address(self) -> Address:
        return (HOST, self.port)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def directory(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix=f"bearer_mw-{self.name}-"))
            _open_servers.add(self)
        return self._directory

    @property
    def log_path(self) -> Path:
        """The file that receives the server's standard output and error."""
        return self.directory / "server.log"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, **options: Any) -> redis.Redis:
        """Return a new client for this server, which the caller must close."""
        options.setdefault("socket_timeout", 5)
        options.setdefault("socket_connect_timeout", 5)
        return redis.Redis(host=HOST, port=self.port, **options)

    def ping(self) -> bool:
        with direct_client(self.address) as client:
            return bool(client.ping())

    def role(self) -> str:
        """Return the replication role the server reports, "master" or "slave"."""
        return str(replication_info(self.address)["role"])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait until its own process replies to commands.

        The first start picks a free port and retries with another one if a
        different process binds it first. Later starts reuse the port.
        """
        if self.is_running():
            return

        if self._port is not None:
            self._launch(timeout)
            return

        for _ in range(PORT_ATTEMPTS):
            self._choose_ports()
            try:
                self._launch(timeout)
            except _PortInUseError:
                self._port = None
                continue
            return

        raise RedisServerError(
            f"{self.name} found no free port in {PORT_ATTEMPTS} attempts; "
            f"server log:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process with SIGTERM, or SIGKILL after ``timeout`` seconds."""
        process = self._process
        if process is None:
            return

        if process.poll() is None:
            process.terminate()
            # A paused process handles SIGTERM only after it continues.
            process.send_signal(signal.SIGCONT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def kill(self) -> None:
        """Stop the process at once with SIGKILL, as a crash would."""
        process = self._process
        if process is None:
            return

        if process.poll() is None:
            process.kill()
        process.wait()
        self._process = None

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop the server and start it again on the same port.

        Keys survive only if ``extra_args`` turn persistence back on.
        """
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """Freeze the process with SIGSTOP, so clients see a server that hangs."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a process frozen by ``pause()``."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the process and remove the server's directory."""
        self.stop()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        _open_servers.discard(self)

    def wait_for_replication_link(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until this replica reports its link to the primary as up."""
        wait_until(
            lambda: replication_info(self.address).get("master_link_status") == "up",
            f"{self.name} on port {self.port} is connected to its primary",
            timeout,
            details=self.log_tail,
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last lines that the server wrote since its latest start."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError as error:
            return f"(server log {self.log_path} could not be read: {error})"
        return "\n".join(text.splitlines()[-lines:])

    def _choose_ports(self) -> None:
        self._port = free_port()

    def _command(self) -> list[str]:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            # Redis 7.0 waits 5 s by default before it streams a full sync, in
            # case more replicas connect. Tests add no more, so skip the wait.
            "--repl-diskless-sync-delay",
            "0",
        ]
        if self.replica_of is not None:
            if isinstance(self.replica_of, RedisServer):
                host, port = self.replica_of.address
            else:
                host, port = self.replica_of
            command += ["--replicaof", host, str(port)]
        return command + list(self.extra_args)

    def _launch(self, timeout: float) -> None:
        command = self._command()
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            try:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                )
            except FileNotFoundError as error:
                raise RedisServerError(
                    MISSING_BINARY_HINT.format(command[0])
                ) from error
        try:
            wait_until(
                self._answers_commands,
                f"{self.name} on port {self.port} answers commands",
                timeout,
                details=lambda: f"server log:\n{self.log_tail()}",
            )
        except RedisServerError:
            self.kill()
            raise

    def _answers_commands(self) -> bool:
        process = self._process
        if process is None or process.poll() is not None:
            log_tail = self.log_tail()
            self._process = None
            if "Address already in use" in log_tail:
                raise _PortInUseError(f"port {self.port} is in use")
            code = None if process is None else process.returncode
            raise RedisServerError(
                f"{self.name} on port {self.port} exited with code {code} "
                f"during startup; server log:\n{log_tail}"
            )

        # Another process may reply on this port while ours still fails to
        # bind it, so only a reply that reports our own process id counts.
        server_info = execute(self.address, "INFO", "server")
        return bool(server_info["process_id"] == process.pid)
