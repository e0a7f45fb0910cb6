"""Decisions shared by both middlewares: credentials and sessions to denials.

Nothing here does I/O. The rules, for a request that the route rules do not
make public:

- no credentials, or another scheme: anonymous, or 401 with a bare challenge
  when the route requires a session;
- an empty or malformed Bearer header: 400 ``invalid_request`` (empty: 401
  ``invalid_token``), whether or not the route requires a session, because the
  client meant to authenticate and got it wrong;
- an unknown, dead or idle session: 401 ``invalid_token``, for the same reason;
- an active session without a required scope: 403 ``insufficient_scope``;
- Redis unavailable: 503 with ``Retry-After``, or anonymous on routes that do
  not require a session when the middleware is configured to degrade that way.
"""

from __future__ import annotations

import json
from datetime import datetime

from .challenge import Denial
from .header import Credentials, CredentialsStatus
from .rules import Requirement
from .session import Session

__all__ = [
    "STORE_UNAVAILABLE",
    "deny_credentials",
    "deny_session",
    "renewal_body",
]

NO_CREDENTIALS = Denial(401, None, "this resource requires a bearer token")
EMPTY_TOKEN = Denial(401, "invalid_token", "the bearer token is empty")
UNKNOWN_SESSION = Denial(
    401, "invalid_token", "the token is unknown, revoked or expired; log in again"
)
STORE_UNAVAILABLE = Denial(503, None, "the session store is unavailable; retry later")
RENEWAL_METHOD = Denial(405, None, "renew a token with POST")


def idle_session_denial(renew_path: str | None) -> Denial:
    """Build the denial for an idle session, pointing at the renew endpoint."""
    if renew_path is None:
        return Denial(401, "invalid_token", "the session is idle; renew the token")
    return Denial(
        401,
        "invalid_token",
        f"the session is idle; renew the token with POST {renew_path}",
    )


def deny_credentials(
    credentials: Credentials, requirement: Requirement
) -> Denial | None:
    """Decide from the header alone; None lets the request go on."""
    status = credentials.status
    if status is CredentialsStatus.BEARER:
        return None
    if status is CredentialsStatus.MALFORMED:
        return Denial(400, "invalid_request", credentials.reason)
    if status is CredentialsStatus.EMPTY:
        return EMPTY_TOKEN
    if requirement.required:
        return NO_CREDENTIALS
    return None


def deny_session(
    session: Session | None, requirement: Requirement, idle_denial: Denial
) -> Denial | None:
    """Decide from the looked-up session; None lets the request go on."""
    if session is None:
        return UNKNOWN_SESSION
    if session.state != "active":
        return idle_denial
    if requirement.scopes:
        granted = session.scopes
        if any(scope not in granted for scope in requirement.scopes):
            return Denial(
                403,
                "insufficient_scope",
                "the token lacks a scope that this resource requires",
                requirement.scopes,
            )
    return None


def _isoformat(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def renewal_body(token: str, session: Session, now: int) -> bytes:
    """Encode the JSON response of the renew endpoint.

    The field names follow an OAuth 2.0 token response (RFC 6749, section
    5.1), with both expiries added.
    """
    document = {
        "access_token": token,
        "token_type": "Bearer",
        # Rounded up, so a token renewed a few milliseconds ago still reports
        # the whole active period.
        "expires_in": max(0, -((now - session.active_expires) // 1000)),
        "active_expires_at": _isoformat(session.active_expires_at),
        "idle_expires_at": _isoformat(session.idle_expires_at),
    }
    return json.dumps(document, separators=(",", ":")).encode("ascii")


#: Headers of a renewal response. Like an OAuth 2.0 token response (RFC 6749,
#: section 5.1), it carries a token, so no cache may keep it.
RENEWAL_HEADERS = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
]
