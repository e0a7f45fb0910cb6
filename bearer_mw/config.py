"""Settings that the WSGI and ASGI middlewares share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .challenge import Denial, check_realm
from .errors import ConfigurationError
from .header import DEFAULT_MAX_LENGTH
from .policy import idle_session_denial
from .rules import Rule, RuleSet, canonical_path

__all__ = ["AUTH_KEY", "SESSION_KEY", "MiddlewareConfig"]

#: Environ and scope key of the per-request auth object.
AUTH_KEY = "bearer_mw.auth"
#: Environ and scope key of the active session, set once it is validated.
SESSION_KEY = "bearer_mw.session"


@dataclass(frozen=True, slots=True)
class MiddlewareConfig:
    """Validated middleware settings; see the middleware classes for each one."""

    required: bool = False
    lazy: bool = False
    realm: str = "api"
    renew_path: str | None = None
    rules: Sequence[Rule] = ()
    max_header_length: int = DEFAULT_MAX_LENGTH
    allow_preflight: bool = True
    retry_after: int = 1
    anonymous_when_unavailable: bool = False
    rule_set: RuleSet = field(init=False, repr=False)
    idle_denial: Denial = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_realm(self.realm)
        if self.renew_path is not None and not self.renew_path.startswith("/"):
            raise ConfigurationError(
                f"renew_path {self.renew_path!r} must start with '/'"
            )
        if self.max_header_length < 16:
            raise ConfigurationError(
                f"max_header_length must be at least 16, got {self.max_header_length}"
            )
        if self.retry_after < 0:
            raise ConfigurationError(
                f"retry_after must not be negative, got {self.retry_after}"
            )
        if self.renew_path is not None:
            # Request paths are compared in canonical form.
            object.__setattr__(self, "renew_path", canonical_path(self.renew_path))
        rule_set = RuleSet(self.rules, required=self.required)
        object.__setattr__(self, "rule_set", rule_set)
        object.__setattr__(self, "idle_denial", idle_session_denial(self.renew_path))
