"""A Redis cluster of three primaries with one replica each, for tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import redis
from redis.crc import key_slot

from tests.redis_servers.server import (
    MISSING_BINARY_HINT,
    Address,
    RedisServer,
    RedisServerError,
    execute,
    free_port,
    replication_info,
    wait_until,
)

# Timeouts in seconds for creating the cluster and for a failover.
CLUSTER_TIMEOUT = 60.0
FAILOVER_TIMEOUT = 60.0

# A primary counts as failed after this long without replies. Short, so that
# failover tests finish in seconds, but long enough that a pause of the busy
# test machine does not trigger a failover by itself.
CLUSTER_NODE_TIMEOUT_MS = 2000


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
    """One line of CLUSTER NODES, which is one node's record of another."""

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
        """URL of a running node, from which a cluster client discovers the rest."""
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
        """Return the parsed CLUSTER NODES reply of ``node``."""
        return parse_cluster_nodes(str(execute(node.address, "CLUSTER", "NODES")))

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
            execute(node.address, "FLUSHALL")

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
        except FileNotFoundError as error:
            raise RedisServerError(MISSING_BINARY_HINT.format(command[0])) from error
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
            replication_info(node.address).get("master_link_status") == "up"
            for node in replicas
        )

    def _describe(self) -> str:
        lines = []
        for node in self.nodes:
            if not node.is_running():
                lines.append(f"{node.name} port {node.port}: stopped")
                continue
            try:
                nodes_text = str(execute(node.address, "CLUSTER", "NODES"))
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
    text = str(execute(node.address, "CLUSTER", "INFO"))
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "cluster_state":
            return value.strip()
    raise RedisServerError(f"CLUSTER INFO on port {node.port} has no cluster_state")
