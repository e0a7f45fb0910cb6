"""Error responses of the middleware, built with no I/O.

Each denial becomes a status, headers and a small JSON body. The
``WWW-Authenticate`` challenge follows RFC 6750, section 3: the ``Bearer``
scheme, ``realm``, then ``error``, ``error_description`` and, for
``insufficient_scope``, ``scope``. Every parameter value is sent as a
quoted-string, as RFC 7235 requires for ``realm`` and RFC 6750 shows for the
others.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from werkzeug.http import quote_header_value

from .errors import ConfigurationError

__all__ = ["Denial", "ErrorResponse", "build_error_response", "check_realm"]

# RFC 6750, section 3: error and error_description values must stay within
# %x20-21 / %x23-5B / %x5D-7E, that is printable ASCII without '"' and '\'.
_PARAMETER_VALUE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a request is rejected before it reaches the application.

    ``error`` is an RFC 6750 error code, or None when the request carried no
    credentials, and RFC 6750 responds to that with a bare challenge.
    """

    status: int
    error: str | None
    description: str
    scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _PARAMETER_VALUE.fullmatch(self.description):
            raise ValueError(
                "error descriptions must be printable ASCII without quotes"
            )


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """A complete error response: status line, headers and body."""

    status: int
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes


def check_realm(realm: str) -> str:
    """Return ``realm`` if it can be sent in a challenge, else raise."""
    if not _PARAMETER_VALUE.fullmatch(realm):
        raise ConfigurationError(
            "realm must be printable ASCII without double quotes or backslashes"
        )
    return realm


def _challenge(denial: Denial, realm: str) -> str:
    parameters = [("realm", realm)]
    if denial.error is not None:
        parameters.append(("error", denial.error))
        parameters.append(("error_description", denial.description))
    if denial.scopes:
        parameters.append(("scope", " ".join(denial.scopes)))
    rendered = ", ".join(
        f"{name}={quote_header_value(value, allow_token=False)}"
        for name, value in parameters
    )
    return f"Bearer {rendered}"


@functools.lru_cache(maxsize=256)
def build_error_response(
    denial: Denial, realm: str, *, retry_after: int = 1
) -> ErrorResponse:
    """Render ``denial`` as a response.

    400, 401 and 403 carry the challenge; 503 carries ``Retry-After`` in
    seconds instead. Every error response is marked ``Cache-Control: no-store``.
    Results are cached, because a flood of bad tokens repeats a few denials.
    Callers copy ``headers`` before handing it to a server that may change it.
    """
    document: dict[str, str | list[str]] = {}
    if denial.error is not None:
        document["error"] = denial.error
    document["error_description"] = denial.description
    if denial.scopes:
        document["scope"] = " ".join(denial.scopes)
    body = json.dumps(document, separators=(",", ":")).encode("ascii")

    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    if denial.status in (400, 401, 403):
        headers.append(("WWW-Authenticate", _challenge(denial, realm)))
    elif denial.status == 503:
        headers.append(("Retry-After", str(retry_after)))
    elif denial.status == 405:
        headers.append(("Allow", "POST"))

    status_line = f"{denial.status} {_REASONS[denial.status]}"
    return ErrorResponse(denial.status, status_line, headers, body)
