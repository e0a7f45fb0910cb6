"""Real redis-server processes for tests: a single server, a cluster, sentinels.

Every process listens on 127.0.0.1 only, on a port that was free when it
started, and keeps its files in its own temporary directory. ``close()`` on a
server and ``stop()`` on a cluster or sentinel group end the processes and
remove the directories. An ``atexit`` hook does the same for anything a test
run left behind, so only a hard kill of the Python process can leak servers.
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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

HOST = "127.0.0.1"

# Timeouts are in seconds and generous, because a busy two-core CI machine can
# take several seconds to start six cluster nodes.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 60.0
FAILOVER_TIMEOUT = 60.0

# How often start() picks a new port after another process took the free one.
PORT_ATTEMPTS = 5
LOG_TAIL_LINES = 25

# A primary counts as failed after this long without answers. Short, so that
# failover tests finish in seconds, but long enough that a pause of the busy
# test machine does not trigger a failover by itself.
CLUSTER_NODE_TIMEOUT_MS = 2000
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 5000
SENTINEL_QUORUM = 2

Address = tuple[str, int]


class RedisServerError(RuntimeError):
    """A Redis process failed to start or stop, or never reached a waited state."""


class _PortInUseError(RedisServerError):
    pass


def missing_binaries(*names: str) -> list[str]:
    """Return the names of the given programs that are not on ``PATH``."""
    return [name for name in names if shutil.which(name) is None]


def free_port() -> int:
    """Return a loopback TCP port that is free now; another process may take it."""
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


def _client(address: Address) -> redis.Redis:
    # No retries: wait_until() polls, and redis-py's default retries with
    # backoff would add seconds to every refused connection.
    return redis.Redis(
        host=address[0],
        port=address[1],
        socket_timeout=5,
        socket_connect_timeout=5,
        decode_responses=True,
        retry=Retry(NoBackoff(), retries=0),
    )


def _execute(address: Address, *args: str | int) -> Any:
    """Send one command on a new connection and return the parsed reply."""
    with _client(address) as client:
        return client.execute_command(*args)


def _replication_info(address: Address) -> dict[str, Any]:
    reply = _execute(address, "INFO", "replication")
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
        """Return a new client for this server; the caller closes it."""
        options.setdefault("socket_timeout", 5)
        options.setdefault("socket_connect_timeout", 5)
        return redis.Redis(host=HOST, port=self.port, **options)

    def ping(self) -> bool:
        with _client(self.address) as client:
            return bool(client.ping())

    def role(self) -> str:
        """Return the replication role the server reports, "master" or "slave"."""
        return str(_replication_info(self.address)["role"])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait until it answers PING.

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
        """Stop the server and start it again on the same port, without its data."""
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
            lambda: _replication_info(self.address).get("master_link_status") == "up",
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
            # Redis 7 waits 5 s by default before it streams a full sync to
            # replicas, hoping more replicas arrive; tests have no more.
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
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        try:
            wait_until(
                self._answers_ping,
                f"{self.name} on port {self.port} answers PING",
                timeout,
                details=lambda: f"server log:\n{self.log_tail()}",
            )
        except RedisServerError:
            self.kill()
            raise

    def _answers_ping(self) -> bool:
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
        return self.ping()


class RedisClusterNode(RedisServer):
    """A cluster-enabled server with its cluster bus on a second free port."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self._bus_port: int | None = None

    def _choose_ports(self) -> None:
        super()._choose_ports()
        # Without --cluster-port the bus listens on port + 10000, which may
        # be taken or above 65535.
        self._bus_port = free_port()

    def _command(self) -> list[str]:
        return [
            *super()._command(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            str(self._bus_port),
            "--cluster-node-timeout",
            str(CLUSTER_NODE_TIMEOUT_MS),
            # Let a replica take over however long ago it last heard from its
            # primary, so that failover tests do not depend on timing.
            "--cluster-replica-validity-factor",
            "0",
            "--cluster-allow-replica-migration",
            "no",
        ]


@dataclass(frozen=True)
class ClusterNodeView:
    """One line of CLUSTER NODES: how one node sees another."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slot_ranges: tuple[tuple[int, int], ...]
    connected: bool

    @property
    def slot_count(self) -> int:
        return sum(last - first + 1 for first, last in self.slot_ranges)

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def is_healthy(self) -> bool:
        unhealthy = {"fail", "fail?", "handshake", "noaddr", "nofailover"}
        return self.connected and not self.flags & unhealthy


def parse_cluster_nodes(text: str) -> list[ClusterNodeView]:
    """Parse the text reply of CLUSTER NODES, one view per line."""
    views = []
    for line in text.splitlines():
        if not line.strip():
            continue

        fields = line.split()
        # The address reads "ip:port@busport", followed by ",hostname" on
        # servers that announce a hostname.
        address = fields[1].split(",")[0].split("@")[0]
        slot_ranges = []
        for slot_field in fields[8:]:
            if slot_field.startswith("["):
                continue  # a slot that is being imported or migrated
            first, _, last = slot_field.partition("-")
            slot_ranges.append((int(first), int(last or first)))

        views.append(
            ClusterNodeView(
                node_id=fields[0],
                port=int(address.rsplit(":", 1)[1]),
                flags=frozenset(fields[2].split(",")),
                primary_id=None if fields[3] == "-" else fields[3],
                slot_ranges=tuple(slot_ranges),
                connected=fields[7] == "connected",
            )
        )
    return views


class RedisCluster:
    """Three primaries with one replica each, made by ``redis-cli --cluster create``.

    Which replica follows which primary is chosen by redis-cli, so ask
    ``primaries()`` and ``replica_of()`` instead of assuming an order.
    """

    primary_count = 3
    hash_slot_count = 16384

    def __init__(self) -> None:
        self.nodes = [
            RedisClusterNode(name=f"cluster-node-{index}")
            for index in range(2 * self.primary_count)
        ]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def startup_nodes(self) -> list[Address]:
        """Addresses of all nodes, for ``redis.cluster.RedisCluster``."""
        return [node.address for node in self.nodes]

    @property
    def url(self) -> str:
        """URL of a node that is running now; a cluster client finds the rest."""
        return self.running_nodes()[0].url

    def running_nodes(self) -> list[RedisClusterNode]:
        running = [node for node in self.nodes if node.is_running()]
        if not running:
            raise RedisServerError("no node of the cluster is running")
        return running

    def start(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Start the nodes, join them into a cluster and wait until it is healthy."""
        try:
            for node in self.nodes:
                node.start()
            self._create(timeout)
            self.wait_until_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.close()

    def node_views(self, node: RedisClusterNode) -> list[ClusterNodeView]:
        """Return the cluster as ``node`` sees it."""
        return parse_cluster_nodes(str(_execute(node.address, "CLUSTER", "NODES")))

    def primaries(self) -> list[RedisClusterNode]:
        """Return the nodes that serve slots as primaries, by a running node's view."""
        views = self.node_views(self.running_nodes()[0])
        ports = {view.port for view in views if view.is_primary and view.slot_count}
        return [node for node in self.nodes if node.port in ports]

    def replica_of(self, primary: RedisClusterNode) -> RedisClusterNode:
        """Return the replica that follows ``primary``."""
        views = self.node_views(self.running_nodes()[0])
        ids = {view.port: view.node_id for view in views}
        for view in views:
            if view.primary_id == ids[primary.port]:
                return self._node_on_port(view.port)
        raise RedisServerError(f"{primary.name} has no replica")

    def primary_for_key(self, key: str | bytes) -> RedisClusterNode:
        """Return the primary that serves the hash slot of ``key``."""
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        for view in self.node_views(self.running_nodes()[0]):
            if not view.is_primary or "fail" in view.flags:
                continue
            if any(first <= slot <= last for first, last in view.slot_ranges):
                return self._node_on_port(view.port)
        raise RedisServerError(f"no primary serves slot {slot} of key {key!r}")

    def flush_all(self) -> None:
        """Delete every key on every primary."""
        for node in self.primaries():
            _execute(node.address, "FLUSHALL")

    def wait_for_promotion(
        self, replica: RedisClusterNode, timeout: float = FAILOVER_TIMEOUT
    ) -> None:
        """Wait until ``replica`` is a primary and every running node is ok."""

        def promoted() -> bool:
            return replica.role() == "master" and all(
                _cluster_state(node) == "ok" for node in self.running_nodes()
            )

        wait_until(
            promoted,
            f"{replica.name} on port {replica.port} is promoted to primary",
            timeout,
            details=self._describe,
        )

    def restore(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Start stopped nodes again and wait until the cluster is healthy.

        A former primary rejoins as a replica of the node that took its place.
        """
        for node in self.nodes:
            if not node.is_running():
                node.start()
        self.wait_until_healthy(timeout)

    def wait_until_healthy(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Wait until every node is ok and each primary has a linked replica."""
        wait_until(
            self._is_healthy,
            "every cluster node reports cluster_state:ok with replicas attached",
            timeout,
            details=self._describe,
        )

    def _create(self, timeout: float) -> None:
        command = [
            "redis-cli",
            "--cluster",
            "create",
            *(f"{host}:{port}" for host, port in self.startup_nodes),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ]
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise RedisServerError(
                f"redis-cli --cluster create timed out after {timeout:.0f} s"
            ) from error
        if result.returncode != 0:
            raise RedisServerError(
                f"redis-cli --cluster create failed with code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def _is_healthy(self) -> bool:
        if not all(node.is_running() for node in self.nodes):
            return False

        for node in self.nodes:
            if _cluster_state(node) != "ok":
                return False
            views = self.node_views(node)
            if len(views) != len(self.nodes):
                return False
            if not all(view.is_healthy for view in views):
                return False

            primaries = [view for view in views if view.is_primary]
            if len(primaries) != self.primary_count:
                return False
            if sum(view.slot_count for view in primaries) != self.hash_slot_count:
                return False
            followed = {view.primary_id for view in views if not view.is_primary}
            if followed != {view.node_id for view in primaries}:
                return False

        replicas = [node for node in self.nodes if node.role() == "slave"]
        return len(replicas) == self.primary_count and all(
            _replication_info(node.address).get("master_link_status") == "up"
            for node in replicas
        )

    def _describe(self) -> str:
        lines = []
        for node in self.nodes:
            if not node.is_running():
                lines.append(f"{node.name} port {node.port}: stopped")
                continue
            try:
                nodes_text = str(_execute(node.address, "CLUSTER", "NODES"))
                lines.append(
                    f"{node.name} port {node.port}, "
                    f"cluster_state:{_cluster_state(node)}, CLUSTER NODES:\n"
                    f"{nodes_text.rstrip()}"
                )
            except redis.RedisError as error:
                lines.append(f"{node.name} port {node.port}: {error!r}")
        return "\n".join(lines)

    def _node_on_port(self, port: int) -> RedisClusterNode:
        for node in self.nodes:
            if node.port == port:
                return node
        raise RedisServerError(f"no cluster node listens on port {port}")


def _cluster_state(node: RedisServer) -> str:
    text = str(_execute(node.address, "CLUSTER", "INFO"))
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "cluster_state":
            return value.strip()
    raise RedisServerError(f"CLUSTER INFO on port {node.port} has no cluster_state")


class RedisSentinel(RedisServer):
    """A redis-server in sentinel mode that monitors one primary.

    Sentinel rewrites its configuration file as it learns the topology, so
    the file lives in the sentinel's directory and is written anew only when
    the sentinel gets a new port.
    """

    def __init__(self, *, name: str, service_name: str, primary: RedisServer) -> None:
        super().__init__(name=name)
        self.service_name = service_name
        self.primary = primary
        self._configured_port: int | None = None

    def _command(self) -> list[str]:
        config_path = self.directory / "sentinel.conf"
        if self._configured_port != self.port:
            config_path.write_text(self._config())
            self._configured_port = self.port
        return ["redis-server", str(config_path), "--sentinel"]

    def _config(self) -> str:
        host, port = self.primary.address
        name = self.service_name
        return "\n".join(
            [
                f"port {self.port}",
                f"bind {HOST}",
                f"dir {self.directory}",
                "daemonize no",
                f"sentinel monitor {name} {host} {port} {SENTINEL_QUORUM}",
                f"sentinel down-after-milliseconds {name} {SENTINEL_DOWN_AFTER_MS}",
                f"sentinel failover-timeout {name} {SENTINEL_FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {name} 1",
                "",
            ]
        )


class RedisSentinelGroup:
    """One primary, one replica and three sentinels with a quorum of two."""

    def __init__(self, service_name: str = "mymaster") -> None:
        self.service_name = service_name
        primary = RedisServer(name="sentinel-primary")
        replica = RedisServer(name="sentinel-replica", replica_of=primary)
        self.servers = [primary, replica]
        self.sentinels = [
            RedisSentinel(
                name=f"sentinel-{index}", service_name=service_name, primary=primary
            )
            for index in range(3)
        ]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def sentinel_addresses(self) -> list[Address]:
        """Addresses for ``redis.sentinel.Sentinel``."""
        return [sentinel.address for sentinel in self.sentinels]

    def start(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Start the servers, then the sentinels, and wait until all agree."""
        try:
            for server in self.servers:
                server.start()
            self.servers[1].wait_for_replication_link(timeout)
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_until_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the sentinels and servers and remove their directories."""
        for server in [*self.sentinels, *self.servers]:
            server.close()

    def primary(self) -> RedisServer:
        """Return the server that the first running sentinel reports as primary."""
        sentinel = next(s for s in self.sentinels if s.is_running())
        return self._server_at(self._reported_primary(sentinel))

    def replicas(self) -> list[RedisServer]:
        primary = self.primary()
        return [server for server in self.servers if server is not primary]

    def stop_primary(self) -> RedisServer:
        """Stop the current primary with SIGTERM and return it."""
        primary = self.primary()
        primary.stop()
        return primary

    def flush_all(self) -> None:
        _execute(self.primary().address, "FLUSHALL")

    def wait_for_promotion(
        self, replica: RedisServer, timeout: float = FAILOVER_TIMEOUT
    ) -> None:
        """Wait until ``replica`` is a primary and every sentinel reports it."""

        def promoted() -> bool:
            return replica.role() == "master" and all(
                self._reported_primary(sentinel) == replica.address
                for sentinel in self.sentinels
                if sentinel.is_running()
            )

        wait_until(
            promoted,
            f"sentinels report {replica.name} on port {replica.port} as primary",
            timeout,
            details=self._describe,
        )

    def restore(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Start stopped processes again and wait until the group is healthy.

        A stopped server restarts as a replica of the current primary, as
        sentinel would reconfigure it, but without sentinel's delay of
        several seconds.
        """
        primary = self.primary()
        for server in self.servers:
            if not server.is_running():
                server.replica_of = primary
                server.start()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_until_healthy(timeout)

    def wait_until_healthy(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Wait until all sentinels agree on the primary and see every process."""
        wait_until(
            self._is_healthy,
            "every sentinel reports the same primary, a linked replica "
            "and the other sentinels",
            timeout,
            details=self._describe,
        )

    def _reported_primary(self, sentinel: RedisSentinel) -> Address:
        reply = _execute(
            sentinel.address, "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service_name
        )
        if reply is None:
            raise RedisServerError(
                f"{sentinel.name} does not monitor {self.service_name!r}"
            )
        host, port = reply
        return (str(host), int(port))

    def _server_at(self, address: Address) -> RedisServer:
        for server in self.servers:
            if server.address == address:
                return server
        raise RedisServerError(f"no server of the group listens on {address}")

    def _is_healthy(self) -> bool:
        if not all(s.is_running() for s in [*self.servers, *self.sentinels]):
            return False

        addresses = {self._reported_primary(s) for s in self.sentinels}
        if len(addresses) != 1:
            return False
        primary = self._server_at(addresses.pop())
        if primary.role() != "master":
            return False

        for sentinel in self.sentinels:
            state = _execute(sentinel.address, "SENTINEL MASTER", self.service_name)
            if _flags(state) != {"master"}:
                return False
            if state["num-other-sentinels"] != len(self.sentinels) - 1:
                return False
            replicas = _execute(sentinel.address, "SENTINEL SLAVES", self.service_name)
            if len(replicas) != len(self.servers) - 1:
                return False
            for replica in replicas:
                if _flags(replica) != {"slave"}:
                    return False
                if replica["master-link-status"] != "ok":
                    return False
        return True

    def _describe(self) -> str:
        lines = []
        for server in [*self.servers, *self.sentinels]:
            if not server.is_running():
                lines.append(f"{server.name} port {server.port}: stopped")
                continue
            try:
                if isinstance(server, RedisSentinel):
                    state = _execute(
                        server.address, "SENTINEL MASTER", self.service_name
                    )
                    lines.append(f"{server.name} port {server.port}: {state}")
                else:
                    lines.append(
                        f"{server.name} port {server.port}: role {server.role()}"
                    )
            except redis.RedisError as error:
                lines.append(f"{server.name} port {server.port}: {error!r}")
        return "\n".join(lines)


def _flags(state: dict[str, Any]) -> set[str]:
    flags = state["flags"]
    if isinstance(flags, str):
        return set(flags.split(","))
    return {str(flag) for flag in flags}
