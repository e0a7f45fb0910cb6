"""A private Redis Cluster of three primaries without replicas, on loopback.

Replicas would only add replication traffic to a benchmark, so the cluster has
none. Each node keeps nothing on disk, listens on a free loopback port and runs
its cluster bus on a second free port. ``redis-cli --cluster create`` assigns
the 16384 hash slots, and the harness waits until every node reports
``cluster_state:ok`` and lists all three nodes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from benchmarks.processes import Child, Supervisor, free_loopback_port
from benchmarks.redis_server import RedisTarget, require_redis_server

PRIMARY_COUNT = 3
HASH_SLOT_COUNT = 16384
CLUSTER_TIMEOUT_SECONDS = 60.0


def node_command(
    executable: str, port: int, bus_port: int, data_dir: Path
) -> list[str]:
    return [
        executable,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--protected-mode", "yes",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--maxclients", "2000",
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(bus_port),
    ]  # fmt: skip


def start_redis_cluster(
    supervisor: Supervisor, data_dir: Path, cpu: int | None
) -> RedisTarget:
    """Start three cluster nodes, assign the slots and wait until all are ok.

    Raises RuntimeError if redis-cli is missing, a node exits, or the cluster is
    not ok within 60 seconds.
    """
    executable = require_redis_server()
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        raise RuntimeError(
            "redis-cli was not found on PATH. It creates the cluster; install it "
            "(Debian: apt-get install redis-tools) or pass --cluster-url."
        )
    children: list[Child] = []
    ports = []
    for index in range(PRIMARY_COUNT):
        node_dir = data_dir / f"node-{index}"
        node_dir.mkdir(parents=True)
        port = free_loopback_port()
        argv = node_command(executable, port, free_loopback_port(), node_dir)
        children.append(supervisor.start(f"redis-cluster-{index}", argv, cpu=cpu))
        ports.append(port)
    deadline = time.monotonic() + CLUSTER_TIMEOUT_SECONDS
    for child, port in zip(children, ports, strict=True):
        wait_for_node(child, port, deadline)
    create_cluster(redis_cli, ports, deadline)
    for child, port in zip(children, ports, strict=True):
        wait_for_cluster_ok(child, port, deadline)
    nodes = ",".join(f"127.0.0.1:{port}" for port in ports)
    return RedisTarget(f"redis+cluster://{nodes}", None, children=children)


def node_client(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True
    )


def wait_for_node(child: Child, port: int, deadline: float) -> None:
    while True:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
        try:
            with node_client(port) as client:
                client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{child.name} did not accept connections on port {port}:\n"
                    f"{child.log_tail()}"
                ) from None
            time.sleep(0.05)


def create_cluster(redis_cli: str, ports: list[int], deadline: float) -> None:
    command = [
        redis_cli, "--cluster", "create",
        *(f"127.0.0.1:{port}" for port in ports),
        "--cluster-replicas", "0", "--cluster-yes",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=max(1.0, deadline - time.monotonic()),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError("redis-cli --cluster create timed out") from None
    if result.returncode != 0:
        raise RuntimeError(
            f"redis-cli --cluster create failed with code {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def wait_for_cluster_ok(child: Child, port: int, deadline: float) -> None:
    """Wait until the node reports the cluster ok, with all slots and nodes known."""
    info: dict[str, str] = {}
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
        with node_client(port) as client:
            info = cluster_info(client)
        if (
            info.get("cluster_state") == "ok"
            and info.get("cluster_slots_ok") == str(HASH_SLOT_COUNT)
            and info.get("cluster_known_nodes") == str(PRIMARY_COUNT)
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(
        f"{child.name} on port {port} did not report a healthy cluster in time; "
        f"last CLUSTER INFO: {info}"
    )


def cluster_info(client: redis.Redis) -> dict[str, str]:
    """Return CLUSTER INFO as text fields, whichever form redis-py parsed it into."""
    reply = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    if isinstance(reply, dict):
        return {str(key): str(value) for key, value in reply.items()}
    lines = str(reply).splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)
