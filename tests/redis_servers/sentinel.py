"""A primary, a replica and three Redis Sentinels that fail over, for tests."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import redis

from tests.redis_servers.server import (
    HOST,
    Address,
    RedisServer,
    RedisServerError,
    execute,
    wait_until,
)

# Timeouts in seconds for starting the group and for a failover.
GROUP_TIMEOUT = 60.0
FAILOVER_TIMEOUT = 60.0

# Sentinel marks the primary down after this long without replies. Two of the
# three sentinels must agree before one of them promotes the replica.
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 5000
SENTINEL_QUORUM = 2


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

    def start(self, timeout: float = GROUP_TIMEOUT) -> None:
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
        for sentinel in self.sentinels:
            if sentinel.is_running():
                return self._server_at(self._reported_primary(sentinel))
        raise RedisServerError("no sentinel of the group is running")

    def replicas(self) -> list[RedisServer]:
        primary = self.primary()
        return [server for server in self.servers if server is not primary]

    def stop_primary(self) -> RedisServer:
        """Stop the current primary with SIGTERM and return it."""
        primary = self.primary()
        primary.stop()
        return primary

    def flush_all(self) -> None:
        execute(self.primary().address, "FLUSHALL")

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

    def restore(self, timeout: float = GROUP_TIMEOUT) -> None:
        """Start stopped processes again and wait until the group is healthy.

        A stopped server restarts as a replica of the current primary, as
        sentinel would reconfigure it, but without sentinel's delay of
        several seconds.
        """
        for sentinel in self.sentinels:
            sentinel.start()

        primary = self.primary()
        if not primary.is_running():
            primary.replica_of = None
            primary.start()
        for server in self.servers:
            if not server.is_running():
                server.replica_of = primary
                server.start()

        self.wait_until_healthy(timeout)

    def wait_until_healthy(self, timeout: float = GROUP_TIMEOUT) -> None:
        """Wait until all sentinels agree on the primary and see every process."""
        wait_until(
            self._is_healthy,
            "every sentinel reports the same primary, a linked replica "
            "and the other sentinels",
            timeout,
            details=self._describe,
        )

    def _reported_primary(self, sentinel: RedisSentinel) -> Address:
        reply = execute(
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
            state = execute(sentinel.address, "SENTINEL MASTER", self.service_name)
            if _flags(state) != {"master"}:
                return False
            if state["num-other-sentinels"] != len(self.sentinels) - 1:
                return False
            replicas = execute(sentinel.address, "SENTINEL SLAVES", self.service_name)
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
                    state = execute(
                        server.address, "SENTINEL MASTER", self.service_name
                    )
                    lines.append(
                        f"{server.name} port {server.port}: primary "
                        f"{state['ip']}:{state['port']}, flags {state['flags']}, "
                        f"{state['num-slaves']} replicas, "
                        f"{state['num-other-sentinels']} other sentinels"
                    )
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
