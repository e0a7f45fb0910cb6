"""Routes, login parsing and responses of the demo app, with no I/O.

The WSGI and ASGI variants both read requests and write responses through
these functions, so the two send byte-identical responses.

The demo has no passwords: ``POST /login`` trusts the user name it is sent
and starts a session for it. A real login endpoint checks credentials first.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from ..policy import renewal_body
from ..rules import Rule
from ..session import Session

__all__ = [
    "MIDDLEWARE_SETTINGS",
    "RECORD_KEY",
    "LoginError",
    "LoginRequest",
    "RequestRecord",
    "Response",
    "log_request",
    "login_response",
    "parse_login",
    "route_error",
]

logger = logging.getLogger("bearer_mw.demo")

INDEX_PATH = "/"
LOGIN_PATH = "/login"
ME_PATH = "/me"
RENEW_PATH = "/renew"
LOGOUT_PATH = "/logout"
LOGOUT_ALL_PATH = "/logout-all"

#: Allowed methods of each path the demo app serves itself.
ROUTES: dict[str, tuple[str, ...]] = {
    INDEX_PATH: ("GET",),
    LOGIN_PATH: ("POST",),
    ME_PATH: ("GET",),
    LOGOUT_PATH: ("POST",),
    LOGOUT_ALL_PATH: ("POST",),
}

REALM = "bearer-mw-demo"

#: Keyword arguments of both middlewares: every route needs an active
#: session, except the index and the login endpoint.
MIDDLEWARE_SETTINGS: dict[str, Any] = {
    "required": True,
    "realm": REALM,
    "renew_path": RENEW_PATH,
    "rules": (Rule(INDEX_PATH, public=True), Rule(LOGIN_PATH, public=True)),
}

#: Largest login body read, in bytes; a longer one gets 413.
MAX_LOGIN_BODY = 4096
MAX_USER_LENGTH = 128
MAX_SCOPES_LENGTH = 512

#: Environ and scope key of the :class:`RequestRecord` of the request.
RECORD_KEY = "bearer_mw.demo.record"

JSON_HEADERS = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response, before either server variant writes it."""

    status: int
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()

    def header_list(self) -> list[tuple[str, str]]:
        """List the headers, with Content-Length added where HTTP allows one."""
        if self.status in {204, 304}:
            return list(self.headers)
        return [*self.headers, ("Content-Length", str(len(self.body)))]


@dataclass(slots=True)
class RequestRecord:
    """Per-request slot where the app stores the user id for the request log."""

    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """A parsed login: the user name and the attributes to store with it."""

    user_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


class LoginError(Exception):
    """A login body that the demo rejects, with the response to send."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.response = error_response(status, "invalid_request", description)


def json_response(
    status: int, document: Any, headers: Sequence[tuple[str, str]] = ()
) -> Response:
    """Encode ``document`` as a JSON response that caches must not store."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return Response(status, body.encode("utf-8"), (*JSON_HEADERS, *headers))


def error_response(
    status: int, error: str, description: str, headers: Sequence[tuple[str, str]] = ()
) -> Response:
    """Build an error response in the shape of an OAuth 2.0 error (RFC 6749)."""
    document = {"error": error, "error_description": description}
    return json_response(status, document, headers)


STORE_UNAVAILABLE = error_response(
    503,
    "temporarily_unavailable",
    "the session store is unavailable; retry later",
    (("Retry-After", "1"),),
)
LOGGED_OUT = Response(204)
NO_SESSION = error_response(
    401,
    "invalid_token",
    "this resource requires a session",
    (("WWW-Authenticate", f'Bearer realm="{REALM}"'),),
)


def route_error(method: str, path: str) -> Response | None:
    """Return 404 or 405 for a request that no route serves, else None."""
    methods = ROUTES.get(path)
    if methods is None:
        return error_response(404, "not_found", f"no resource at {path}")
    if method not in methods:
        allowed = ", ".join(methods)
        return error_response(
            405, "method_not_allowed", f"use {allowed}", (("Allow", allowed),)
        )
    return None


def index_response() -> Response:
    """Describe the endpoints, for a first look in a browser."""
    document = {
        "about": "bearer_mw demo. It trusts the user name sent to /login: "
        "there are no passwords, so anyone can log in as anyone.",
        "endpoints": {
            f"POST {LOGIN_PATH}": 'JSON {"user": "alice"} or form user=alice; '
            "returns a token",
            f"GET {ME_PATH}": "the caller's session",
            f"POST {RENEW_PATH}": "a new token for the caller's session; "
            "the old token stops working",
            f"POST {LOGOUT_PATH}": "end the caller's session",
            f"POST {LOGOUT_ALL_PATH}": "end every session of the caller's user",
        },
    }
    return json_response(200, document)


def parse_login(content_type: str | None, body: bytes) -> LoginRequest:
    """Read the user name, and optional scopes, from a JSON or form body.

    Raises :class:`LoginError` for a body the demo cannot use.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        fields = _json_fields(body)
    elif media_type == "application/x-www-form-urlencoded":
        fields = _form_fields(body)
    else:
        raise LoginError(
            415,
            "send the login as application/json or application/x-www-form-urlencoded",
        )

    user_id = fields.get("user")
    if not isinstance(user_id, str) or not user_id:
        raise LoginError(400, "the login needs a non-empty string field 'user'")
    if len(user_id) > MAX_USER_LENGTH:
        raise LoginError(400, f"'user' is longer than {MAX_USER_LENGTH} characters")
    if not user_id.strip():
        raise LoginError(400, "'user' must not be blank")
    # Cc: control characters, Cf: invisible format characters such as a
    # right-to-left override, Cs: lone surrogates, which are not text at all.
    if any(unicodedata.category(c) in {"Cc", "Cf", "Cs"} for c in user_id):
        raise LoginError(
            400, "'user' must not contain control, format or surrogate characters"
        )

    scopes = fields.get("scopes")
    if scopes is None:
        return LoginRequest(user_id)
    if not isinstance(scopes, str) or len(scopes) > MAX_SCOPES_LENGTH:
        raise LoginError(
            400,
            "'scopes' must be a space-separated string of at most "
            f"{MAX_SCOPES_LENGTH} characters",
        )
    return LoginRequest(user_id, {"scopes": scopes})


def _json_fields(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise LoginError(400, "the body is not valid JSON") from error
    if not isinstance(document, dict):
        raise LoginError(400, "the JSON body must be an object")
    return document


def _form_fields(body: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), max_num_fields=20, strict_parsing=True)
    except (ValueError, UnicodeDecodeError) as error:
        raise LoginError(400, "the body is not a valid form") from error
    return dict(pairs)


def login_response(token: str, session: Session, now: int) -> Response:
    """Return the new token as the renew endpoint returns a renewed one."""
    return Response(200, renewal_body(token, session, now), JSON_HEADERS)


def _isoformat(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def session_response(session: Session) -> Response:
    """Describe the caller's session. The token is not part of a session."""
    document = {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "attributes": dict(session.attributes),
        "state": session.state,
        "created_at": _isoformat(session.created_at),
        "active_expires_at": _isoformat(session.active_expires_at),
        "idle_expires_at": _isoformat(session.idle_expires_at),
    }
    return json_response(200, document)


def logout_all_response(ended: int) -> Response:
    """Report how many sessions ``POST /logout-all`` ended."""
    return json_response(200, {"ended_sessions": ended})


def log_request(
    method: str, path: str, status: int, user_id: str | None, seconds: float
) -> None:
    """Log one request at INFO. Paths and user ids only: no header, no query.

    A path or user id with unprintable characters is logged as an escaped
    literal, so a newline or an escape sequence cannot forge a log line or
    drive a terminal.
    """
    logger.info(
        "%s %s %d user=%s %.1f ms",
        method,
        _printable(path),
        status,
        _printable(user_id) if user_id is not None else "-",
        seconds * 1000,
    )


def _printable(text: str) -> str:
    return text if text.isprintable() else ascii(text)
