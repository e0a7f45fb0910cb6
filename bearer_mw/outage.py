"""Logging of Redis outages: one warning when one starts, one line when it ends."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger("bearer_mw.store")


@dataclass(slots=True)
class _Outage:
    failures: int
    started: float


class OutageLog:
    """Count store failures so an outage is logged once, not once per call.

    Outages are tracked per store operation, because a partial failure (an
    out-of-memory server that still serves reads, a missing replica that
    only fails durable writes) would otherwise start and end an outage on
    every request. The first failure of an operation logs a WARNING with the
    operation and the error. Later failures are only counted, until a call of
    that operation succeeds and logs the recovery at INFO with the number of
    failed calls and the outage's length.
    """

    __slots__ = ("_lock", "_outages")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outages: dict[str, _Outage] = {}

    @property
    def failing(self) -> bool:
        """Whether any operation's last call failed."""
        return bool(self._outages)

    def failure(self, operation: str, error: BaseException) -> None:
        """Record a failed call, and log it if it starts an outage."""
        with self._lock:
            outage = self._outages.get(operation)
            if outage is not None:
                outage.failures += 1
                return
            self._outages[operation] = _Outage(1, time.monotonic())
        logger.warning(
            "Redis call failed during %s; the store raises StoreUnavailableError "
            "and counts further failures of %s until one succeeds: %s",
            operation,
            operation,
            _describe(error),
        )

    def success(self, operation: str) -> None:
        """Record a successful call, and log the recovery if an outage was running."""
        if operation not in self._outages:
            return
        with self._lock:
            outage = self._outages.pop(operation, None)
        if outage is not None:
            logger.info(
                "Redis reachable again for %s after %d failed calls in %.1f s",
                operation,
                outage.failures,
                time.monotonic() - outage.started,
            )


def _describe(error: BaseException) -> str:
    # Commands carry token digests and sealed successors, never tokens, so a
    # Redis error cannot quote a token. The type name is what operators
    # search for.
    return f"{type(error).__name__}: {error}"
