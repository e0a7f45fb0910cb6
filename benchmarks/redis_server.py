"""The Redis that a run uses: a private redis-server on loopback, or ``--redis-url``.

A private server keeps nothing on disk and is emptied between steps. It listens
on a loopback port and on a unix socket in the run directory. A database given
with ``--redis-url`` must be empty at the start, because the harness seeds it and
empties it again (FLUSHDB on that database only) when the run ends. A
``redis+cluster://`` URL works too; then the counters are summed over the
cluster's primaries.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis
import redis.cluster

from bearer_mw import redis_from_url
from bearer_mw.topologies import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    parse_cluster_url,
    parse_sentinel_url,
)
from benchmarks.processes import Child, Supervisor, free_loopback_port

# INFO and the other commands that the harness itself sends while it measures.
HARNESS_COMMANDS = frozenset(
    {"info", "dbsize", "memory|usage", "memory", "ping", "cluster|slots", "command"}
)
# Seconds per reply for the harness's own client, which runs FLUSHDB on up to
# millions of keys and long seeding pipelines.
HARNESS_TIMEOUT_SECONDS = 60.0
UNIX_SOCKET_NAME = "redis.sock"

# The harness's client: a single server's, or a cluster client over its nodes.
HarnessClient = redis.Redis | redis.cluster.RedisCluster


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_hosts(url: str) -> list[str]:
    """Return every host that a URL names. A unix socket URL names none.

    Cluster and Sentinel URLs list several ``host:port`` pairs, and each counts.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "unix":
        return []
    if scheme == CLUSTER_SCHEME:
        return [host for host, _ in parse_cluster_url(url).nodes]
    if scheme == SENTINEL_SCHEME:
        return [host for host, _ in parse_sentinel_url(url).sentinels]
    host = urlsplit(url).hostname
    if host is None:
        raise ValueError(f"the URL {url!r} has no host name")
    return [host]


def require_allowed_host(
    url: str,
    *,
    allow_remote: bool,
    what: str,
    remote_option: str | None = "--allow-remote-host",
) -> None:
    """Raise ValueError unless every host of the URL is loopback, or remote hosts
    are allowed. A unix socket URL passes, because the socket is local.

    ``what`` names the option in the error message, and ``remote_option`` the
    option that allows other hosts, or None for a command that has none.
    """
    hosts = url_hosts(url)
    remote = [host for host in hosts if not is_loopback_host(host)]
    if remote and not allow_remote:
        rule = (
            f"unless {remote_option} is given, which is meant for hosts that you "
            "operate"
            if remote_option is not None
            else "by this command, which has no option for other hosts"
        )
        raise ValueError(
            f"{what} {url!r} names {remote[0]!r}, which is not a loopback address. "
            f"Load is sent only to 127.0.0.0/8 or ::1 {rule}."
        )


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() == CLUSTER_SCHEME


def harness_client(url: str) -> HarnessClient:
    """Build the harness's own client for seeding, counters and FLUSHDB."""
    client: HarnessClient = redis_from_url(url, timeout=HARNESS_TIMEOUT_SECONDS)
    return client


@dataclass
class RedisTarget:
    """The Redis in use: its URL, the processes the harness started for it, and
    the URL of its unix socket if it has one."""

    url: str
    child: Child | None
    unix_url: str | None = None
    children: list[Child] = field(default_factory=list)

    @property
    def owned(self) -> bool:
        return self.child is not None or bool(self.children)

    @property
    def is_cluster(self) -> bool:
        return is_cluster_url(self.url)

    def client(self) -> HarnessClient:
        return harness_client(self.url)


def start_redis_server(
    supervisor: Supervisor,
    data_dir: Path,
    cpu: int | None,
    *,
    name: str = "redis-server",
) -> RedisTarget:
    """Start redis-server without persistence on a free loopback port and on a
    unix socket in ``data_dir``, which only this user may open. ``name`` names
    the child and its log."""
    executable = require_redis_server()
    port = free_loopback_port()
    socket_path = data_dir / UNIX_SOCKET_NAME
    argv = [
        executable,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--protected-mode", "yes",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--maxclients", "2000",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
    ]  # fmt: skip
    child = supervisor.start(name, argv, cpu=cpu)
    target = RedisTarget(
        f"redis://127.0.0.1:{port}/0", child, unix_url=f"unix://{socket_path}?db=0"
    )
    wait_for_redis(target)
    return target


def require_redis_server() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(
            "redis-server was not found on PATH. Install it (Debian: apt-get install "
            "redis-server) or pass --redis-url for a database you can empty."
        )
    return executable


def wait_for_redis(target: RedisTarget, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if target.child is not None and target.child.process.poll() is not None:
            raise RuntimeError(f"redis-server exited:\n{target.child.log_tail()}")
        try:
            with target.client() as client:
                client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def require_empty_database(target: RedisTarget) -> None:
    with target.client() as client:
        size = database_size(client)
    if size:
        raise RuntimeError(
            f"the database at {target.url} contains {size} keys. The harness seeds "
            "and then empties the database it uses, so point --redis-url at an empty "
            "database (for example another database number such as /15)."
        )


def node_clients(client: HarnessClient) -> list[redis.Redis]:
    """Return one client per server: the primaries of a cluster, else the client.

    redis-py sends INFO and DBSIZE to a single node of a cluster, so the
    harness asks each primary and adds the figures up.
    """
    if isinstance(client, redis.cluster.RedisCluster):
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]
        return [client.get_redis_connection(node) for node in primaries]
    return [client]


def database_size(client: HarnessClient) -> int:
    return sum(int(node.dbsize()) for node in node_clients(client))


def command_calls(client: HarnessClient) -> dict[str, int]:
    """Return the call count per command from INFO commandstats of every node."""
    calls: dict[str, int] = {}
    for node in node_clients(client):
        for key, value in node.info("commandstats").items():
            if key.startswith("cmdstat_") and isinstance(value, dict):
                command = key.removeprefix("cmdstat_")
                calls[command] = calls.get(command, 0) + int(value.get("calls", 0))
    return calls


def redis_cpu_seconds(client: HarnessClient) -> float:
    total = 0.0
    for node in node_clients(client):
        stats = node.info("cpu")
        total += float(stats["used_cpu_user"]) + float(stats["used_cpu_sys"])
    return total


def used_memory_bytes(client: HarnessClient) -> int:
    """Sum ``used_memory`` less client buffers, which shrink and grow with load."""
    total = 0
    for node in node_clients(client):
        memory = node.info("memory")
        total += int(memory["used_memory"]) - int(memory.get("mem_clients_normal", 0))
    return total


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


def server_version(client: HarnessClient) -> str:
    node = node_clients(client)[0]
    return str(node.info("server").get("redis_version", "unknown"))
