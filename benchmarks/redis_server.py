"""The Redis that a run uses: a private redis-server on loopback, or ``--redis-url``.

A private server keeps nothing on disk and is emptied between steps. A database given
with ``--redis-url`` must be empty at the start, because the harness seeds it and
empties it again (FLUSHDB on that database only) when the run ends.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from benchmarks.processes import Child, Supervisor, free_loopback_port

# INFO and the other commands that the harness itself sends while it measures.
HARNESS_COMMANDS = frozenset({"info", "dbsize", "memory|usage", "memory", "ping"})


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_allowed_host(url: str, *, allow_remote: bool, what: str) -> None:
    """Raise ValueError unless the URL's host is loopback or remote hosts are allowed.

    ``what`` names the option in the error message.
    """
    host = urlsplit(url).hostname
    if host is None:
        raise ValueError(f"{what} {url!r} has no host name")
    if not is_loopback_host(host) and not allow_remote:
        raise ValueError(
            f"{what} {url!r} is not a loopback address. Load is sent only to "
            "127.0.0.0/8 or ::1 unless --allow-remote-host is given, which is "
            "meant for hosts that you operate."
        )


@dataclass
class RedisTarget:
    """The Redis in use: its URL, and the child process if the harness started it."""

    url: str
    child: Child | None

    @property
    def owned(self) -> bool:
        return self.child is not None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def start_redis_server(
    supervisor: Supervisor, data_dir: Path, cpu: int | None
) -> RedisTarget:
    """Start redis-server on a free loopback port without persistence."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(
            "redis-server was not found on PATH. Install it (Debian: apt-get install "
            "redis-server) or pass --redis-url for a database you can empty."
        )
    port = free_loopback_port()
    argv = [
        executable,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--protected-mode", "yes",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--maxclients", "2000",
    ]  # fmt: skip
    child = supervisor.start("redis-server", argv, cpu=cpu)
    target = RedisTarget(f"redis://127.0.0.1:{port}/0", child)
    wait_for_redis(target)
    return target


def wait_for_redis(target: RedisTarget, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = target.client()
    try:
        while True:
            if target.child is not None and target.child.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{target.child.log_tail()}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


def require_empty_database(target: RedisTarget) -> None:
    with target.client() as client:
        size = client.dbsize()
    if size:
        raise RuntimeError(
            f"the database at {target.url} contains {size} keys. The harness seeds "
            "and then empties the database it uses, so point --redis-url at an empty "
            "database (for example another database number such as /15)."
        )


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Return the call count per command from INFO commandstats."""
    stats = client.info("commandstats")
    calls = {}
    for key, value in stats.items():
        if key.startswith("cmdstat_") and isinstance(value, dict):
            calls[key.removeprefix("cmdstat_")] = int(value.get("calls", 0))
    return calls


def redis_cpu_seconds(client: redis.Redis) -> float:
    stats = client.info("cpu")
    return float(stats["used_cpu_user"]) + float(stats["used_cpu_sys"])


def used_memory_bytes(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Return the calls made between two snapshots, less the harness's own commands."""
    delta = {}
    for command, calls in after.items():
        if command in HARNESS_COMMANDS:
            continue
        made = calls - before.get(command, 0)
        if made > 0:
            delta[command] = made
    return delta


def server_version(client: redis.Redis) -> str:
    return str(client.info("server").get("redis_version", "unknown"))
