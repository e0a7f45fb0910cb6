"""Exception family of bearer_mw. No message ever contains a token."""

from __future__ import annotations


class BearerMWError(Exception):
    """Base class of every error that bearer_mw raises on purpose."""


class ConfigurationError(BearerMWError, ValueError):
    """A setting passed to a store or middleware is invalid."""


class InvalidSessionError(BearerMWError):
    """The token names no live session: unknown, dead, revoked or malformed."""


class StoreUnavailableError(BearerMWError):
    """Redis could not be reached, timed out or refused the command."""

    def __init__(self, message: str, *, operation: str) -> None:
        super().__init__(message)
        self.operation = operation
