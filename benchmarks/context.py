"""The state that the suites of one run share: Redis, servers, seeded tokens."""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import seeding
from benchmarks.measure import LoadSettings, Measurement, measure
from benchmarks.processes import Supervisor
from benchmarks.redis_server import HarnessClient, RedisTarget
from benchmarks.servers import RunningServer, start_server
from benchmarks.variants import App, TokenScheme, Variant

logger = logging.getLogger(__name__)


@dataclass
class BenchContext:
    """Everything a suite needs to seed sessions, start servers and measure."""

    supervisor: Supervisor
    load: LoadSettings
    redis_target: RedisTarget
    client: HarnessClient
    run_dir: Path
    server_cpu: int | None
    wsgi_threads: int
    servers: dict[str, RunningServer] = field(default_factory=dict)
    tokens: dict[tuple[TokenScheme, str], list[str]] = field(default_factory=dict)
    stored_sessions: int = 0
    pipelined_seeding: bool | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    # Prefix of server log names, so two contexts of one run keep separate logs.
    log_prefix: str = ""

    def server_for(self, app: App) -> RunningServer:
        """Return the running server of ``app``, starting it on first use."""
        server = self.servers.get(app.name)
        if server is None:
            logger.info("starting %s%s", self.log_prefix, app.name)
            redis_url = self.redis_target.url
            if app.unix_socket:
                if self.redis_target.unix_url is None:
                    raise RuntimeError(
                        f"{app.name} needs a unix socket, and only the private "
                        "redis-server has one; run without --redis-url"
                    )
                redis_url = self.redis_target.unix_url
            server = start_server(
                self.supervisor,
                app,
                redis_url=redis_url,
                cpu=self.server_cpu,
                wsgi_threads=self.wsgi_threads,
                log_prefix=self.log_prefix,
            )
            self.servers[app.name] = server
        return server

    def skip_missing_packages(self, variants: list[Variant]) -> None:
        """Mark variants whose peer packages are not installed as skipped."""
        for variant in variants:
            missing = [
                package
                for package in variant.app.packages
                if importlib.util.find_spec(package) is None
            ]
            if missing:
                reason = f"{', '.join(missing)} not installed (bench extra)"
                logger.warning("skipping %s: %s", variant.name, reason)
                self.skipped[variant.name] = reason

    def empty_database(self) -> None:
        self.client.flushdb()
        self.tokens.clear()
        self.stored_sessions = 0

    def detect_seeding_mode(self) -> bool:
        """Decide once per run whether bearer_mw sessions can be seeded in pipelines."""
        if self.pipelined_seeding is None and self.redis_target.is_cluster:
            # NOTE: pipelined seeding is not tried on a cluster. One call per
            # session is slower, but redis-py routes each call to its node.
            self.pipelined_seeding = False
            logger.info("seeding bearer_mw sessions on a cluster: one call each")
        if self.pipelined_seeding is None:
            self.pipelined_seeding = seeding.pipelined_seeding_works(self.client)
            self.client.flushdb()
            mode = "pipelined" if self.pipelined_seeding else "one call per session"
            logger.info("seeding bearer_mw sessions: %s", mode)
        return self.pipelined_seeding

    def seed(self, variants: list[Variant], count: int) -> None:
        """Seed ``count`` sessions of every scheme the variants use, plus idle ones."""
        schemes = sorted({variant.scheme for variant in variants})
        for scheme in schemes:
            if (scheme, "valid") in self.tokens:
                continue
            started = time.monotonic()
            logger.info("seeding %d %s sessions", count, scheme)
            if scheme == "bearer_mw":
                sample = seeding.seed_bearer_mw(
                    self.client,
                    count,
                    pipelined=self.detect_seeding_mode(),
                    on_progress=self._report_progress(count),
                )
            else:
                sample = seeding.seed_peer_scheme(self.client, scheme, count)
            self.tokens[(scheme, "valid")] = sample
            logger.info(
                "seeded %d %s sessions in %.1f s",
                count,
                scheme,
                time.monotonic() - started,
            )
        self.stored_sessions = count
        kinds = {variant.token_kind for variant in variants}
        if "idle" in kinds and ("bearer_mw", "idle") not in self.tokens:
            self._seed_idle()
        if "revoked" in kinds and ("bearer_mw", "revoked") not in self.tokens:
            revoked = seeding.seed_revoked_bearer_mw(self.client, seeding.SAMPLE_SIZE)
            self.tokens[("bearer_mw", "revoked")] = revoked

    def _seed_idle(self) -> None:
        sample, reason = seeding.seed_idle_bearer_mw(self.client, seeding.SAMPLE_SIZE)
        if sample:
            self.tokens[("bearer_mw", "idle")] = sample
            return
        logger.warning("the idle-token variants are skipped: %s", reason)
        for interface in ("asgi", "wsgi"):
            self.skipped[f"{interface}:bearer_mw-idle"] = reason

    @staticmethod
    def _report_progress(total: int) -> seeding.ProgressCallback:
        step = max(total // 10, seeding.BATCH_SIZE)
        last = [0]

        def report(done: int) -> None:
            if done - last[0] >= step or done == total:
                last[0] = done
                logger.info("  %d of %d sessions created", done, total)

        return report

    def header_file(self, variant: Variant) -> Path:
        """Write and return the file of Authorization header values for the variant."""
        source_kind = variant.token_kind
        if source_kind in {"missing", "malformed"}:
            source_kind = "valid"
        tokens = self.tokens.get((variant.scheme, source_kind), [])
        values = seeding.header_values(variant.token_kind, tokens)
        name = self.log_prefix + variant.name.replace(":", "-")
        path = self.run_dir / f"headers-{name}.txt"
        return seeding.write_header_file(path, values)

    def measure_variant(self, variant: Variant, connections: int) -> Measurement:
        server = self.server_for(variant.app)
        logger.info("measuring %s at %d connections", variant.name, connections)
        return measure(
            self.load,
            variant=variant.name,
            url=server.url,
            header_file=self.header_file(variant),
            expected_statuses=variant.expected_statuses,
            connections=connections,
            stored_sessions=self.stored_sessions,
            server_pgid=server.pgid,
            redis_client=self.client,
        )
