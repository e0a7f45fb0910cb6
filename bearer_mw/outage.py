"""Logging of Redis outages: one warning when one starts, one line when it ends."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("bearer_mw.store")


class OutageLog:
    """Count store failures so an outage is logged once, not once per call.

    The first failure logs a WARNING with the operation and the error. Later
    failures are only counted, until a call succeeds and logs the recovery at
    INFO with the number of failed calls and the outage's length. A store
    that fails, recovers and fails again logs a second outage.
    """

    __slots__ = ("_failures", "_lock", "_started")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._started = 0.0

    @property
    def failing(self) -> bool:
        """Whether the last call to the store failed."""
        return self._failures > 0

    def failure(self, operation: str, error: BaseException) -> None:
        """Record a failed call, and log it if it starts an outage."""
        with self._lock:
            self._failures += 1
            first = self._failures == 1
            if first:
                self._started = time.monotonic()
        if first:
            logger.warning(
                "Redis call failed during %s; the store raises "
                "StoreUnavailableError and counts further failures until a "
                "call succeeds: %s",
                operation,
                _describe(error),
            )

    def success(self) -> None:
        """Record a successful call, and log the recovery if an outage was running."""
        if not self._failures:
            return
        with self._lock:
            failures, self._failures = self._failures, 0
            seconds = time.monotonic() - self._started
        if failures:
            logger.info(
                "Redis reachable again after %d failed calls in %.1f s",
                failures,
                seconds,
            )


def _describe(error: BaseException) -> str:
    # Commands carry token digests and sealed successors, never tokens, so a
    # Redis error cannot quote a token. The type name is what operators
    # search for.
    return f"{type(error).__name__}: {error}"
