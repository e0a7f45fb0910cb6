"""Strict parsing of the ``Authorization`` request header, with no I/O.

The grammar is RFC 7235 ``credentials`` with the RFC 6750 ``b64token``::

    credentials = auth-scheme [ 1*SP b64token ]
    b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="

The scheme is matched case-insensitively and the token is returned exactly as
sent. Spaces and tabs around the whole field value are ignored, because they
are not part of a field value (RFC 9110, section 5.5). Everything else that
deviates from the grammar is malformed, so the middleware can respond with 400
instead of guessing which credential the client meant.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "Credentials",
    "CredentialsStatus",
    "classify_without_token",
    "parse_authorization",
    "read_bearer_token",
]

#: Longest accepted ``Bearer`` header value, in characters. Issued tokens are
#: 56 characters, so this leaves room for tokens of other formats while
#: stopping oversized values before any Redis call.
DEFAULT_MAX_LENGTH = 1024

_TOKEN = r"[A-Za-z0-9\-._~+/]+=*"  # noqa: S105 (a pattern, not a password)
_BEARER = re.compile(rf"[ \t]*[Bb][Ee][Aa][Rr][Ee][Rr] +({_TOKEN})[ \t]*")
_B64TOKEN = re.compile(_TOKEN)
# RFC 9110 tchar, which is what an auth-scheme is made of.
_SCHEME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LISTED_BEARER = re.compile(r"[ \t]*bearer(?:[ \t]|$)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class CredentialsStatus(enum.Enum):
    """Classification of an ``Authorization`` header value, as far as Bearer goes."""

    ABSENT = "absent"
    """No header, or only whitespace: the request carries no credentials."""

    OTHER_SCHEME = "other_scheme"
    """Credentials of another scheme, such as Basic, for another layer."""

    EMPTY = "empty"
    """The Bearer scheme with no token after it."""

    MALFORMED = "malformed"
    """A Bearer credential, or a list holding one, that breaks the grammar."""

    BEARER = "bearer"
    """A well-formed Bearer token."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Result of parsing one ``Authorization`` header value.

    ``reason`` explains a MALFORMED or EMPTY status in words safe to send to
    the client; it never quotes the header.
    """

    status: CredentialsStatus
    token: str | None = None
    reason: str = ""

    def __repr__(self) -> str:
        shown = "<hidden>" if self.token is not None else None
        return (
            f"Credentials(status={self.status.name}, token={shown}, "
            f"reason={self.reason!r})"
        )


ABSENT = Credentials(CredentialsStatus.ABSENT)
OTHER_SCHEME = Credentials(CredentialsStatus.OTHER_SCHEME)
EMPTY = Credentials(CredentialsStatus.EMPTY, reason="the bearer token is empty")


def malformed(reason: str) -> Credentials:
    """Build a MALFORMED result whose reason is safe to show to the client."""
    return Credentials(CredentialsStatus.MALFORMED, reason=reason)


MULTIPLE_HEADERS = malformed("the request has more than one Authorization header")
SEVERAL_METHODS = malformed("the request sends a bearer token in more than one way")


def parse_authorization(
    value: str | bytes | None, *, max_length: int = DEFAULT_MAX_LENGTH
) -> Credentials:
    """Classify one ``Authorization`` header value.

    Bytes are decoded as ISO-8859-1, which never fails, so non-ASCII input is
    rejected by the grammar rather than by a decoding error. ``max_length``
    bounds a Bearer value before the token is examined.
    """
    token = read_bearer_token(value, max_length=max_length)
    if token is not None:
        return Credentials(CredentialsStatus.BEARER, token)
    return classify_without_token(value, max_length=max_length)


def classify_without_token(
    value: str | bytes | None, *, max_length: int = DEFAULT_MAX_LENGTH
) -> Credentials:
    """Classify a value in which :func:`read_bearer_token` found no token.

    The middleware calls this only after that fast path, so a missing or
    malformed header is matched against the Bearer pattern once.
    """
    if value is None:
        return ABSENT
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return _classify(value.strip(" \t"), max_length)


def _classify(value: str, max_length: int) -> Credentials:
    """Sort a value that is not a plain, well-formed Bearer credential."""
    if not value:
        return ABSENT

    scheme_match = _SCHEME.match(value)
    scheme = scheme_match.group() if scheme_match else ""
    if scheme.lower() != "bearer":
        if any(_LISTED_BEARER.match(part) for part in value.split(",")[1:]):
            return malformed("the header lists several credentials")
        return OTHER_SCHEME

    if len(value) > max_length:
        return malformed(f"the header is longer than {max_length} characters")
    if not value.isascii():
        return malformed("the header contains non-ASCII characters")
    if _CONTROL.search(value) or "\t" in value:
        return malformed("the header contains a tab or control character")

    rest = value[len(scheme) :]
    if not rest:
        return EMPTY
    if "," in rest:
        return malformed("the header lists several credentials")
    if rest[0] != " ":
        return malformed("the scheme must be followed by a space")

    token = rest.lstrip(" ")
    if not token:
        return EMPTY
    if " " in token:
        return malformed("the header has text after the token")
    if _B64TOKEN.fullmatch(token) is None:
        return malformed("the token has characters outside the b64token alphabet")
    # A token that passed b64token here would have matched the fast pattern,
    # unless the header was too long for it.
    return malformed(f"the header is longer than {max_length} characters")


def read_bearer_token(
    value: str | bytes | None, *, max_length: int = DEFAULT_MAX_LENGTH
) -> str | None:
    """Return the Bearer token in an ``Authorization`` header value, or None.

    None means there is no usable Bearer credential: the header is absent, of
    another scheme, empty or malformed, and :func:`classify_without_token`
    distinguishes these. The middleware calls this first, so a well-formed
    request builds no :class:`Credentials`.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if len(value) > max_length:
        return None
    match = _BEARER.fullmatch(value)
    return None if match is None else match.group(1)
