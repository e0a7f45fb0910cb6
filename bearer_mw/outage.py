"""Logging of Redis outages: one warning when one starts, one line when it ends."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("bearer_mw.store")


class OutageLog:
    """Count store failures so an outage is logged once, not once per request.

    The first failure logs a WARNING with the error. Later failures only count
    until a call succeeds, which logs the recovery at INFO with that count.
    """

    __slots__ = ("_failures", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0

    @property
    def failing(self) -> bool:
        """Whether the last call to the store failed."""
        return self._failures > 0

    def failure(self, operation: str, error: BaseException) -> None:
        """Record a failed call; log it if it starts an outage."""
        with self._lock:
            self._failures += 1
            first = self._failures == 1
        if first:
            logger.warning(
                "Redis call failed during %s, answering 503 until it recovers: %s",
                operation,
                _describe(error),
            )

    def success(self) -> None:
        """Record a successful call; log the recovery if an outage was running."""
        if not self._failures:
            return
        with self._lock:
            failures, self._failures = self._failures, 0
        if failures:
            logger.info("Redis reachable again after %d failed calls", failures)


def _describe(error: BaseException) -> str:
    # Commands carry token digests, never tokens, so no Redis error can quote
    # a token. The type name is what operators search for.
    return f"{type(error).__name__}: {error}"
