"""The apps that the harness serves and the request scenarios it sends to them.

An app is one server process. A variant is an app plus the kind of Authorization
header that every request carries, and the statuses that count as expected.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Literal

from benchmarks.apps.settings import DEFAULT_CLIENT

Interface = Literal["asgi", "wsgi"]
TokenScheme = Literal["bearer_mw", "raw", "starlette", "fastapi_users", "flask"]
TokenKind = Literal["valid", "missing", "malformed", "revoked", "idle"]

OK = frozenset({200})
UNAUTHORIZED = frozenset({401})
# RFC 6750 section 3.1 allows 400 (invalid_request) for a malformed header.
BAD_CREDENTIALS = frozenset({400, 401})


@dataclass(frozen=True)
class App:
    """A server process: its interface, the factory's app id and its baseline.

    ``client`` names an entry of ``apps.settings.CLIENT_CHOICES``, and
    ``unix_socket`` makes the app reach Redis over the private server's unix
    socket. Both change the name only when they differ from the defaults.
    """

    interface: Interface
    app_id: str
    baseline_app_id: str
    packages: tuple[str, ...] = ()
    client: str = DEFAULT_CLIENT
    unix_socket: bool = False

    @property
    def name(self) -> str:
        name = f"{self.interface}:{self.app_id}"
        if self.client != DEFAULT_CLIENT:
            name += f"@{self.client}"
        if self.unix_socket:
            name += "@unix"
        return name


@dataclass(frozen=True)
class Variant:
    """An app, the token scheme and kind sent to it, and the expected statuses."""

    name: str
    app: App
    scheme: TokenScheme
    token_kind: TokenKind
    expected_statuses: frozenset[int]
    description: str


def build_variants() -> list[Variant]:
    variants: list[Variant] = []
    for interface in ("asgi", "wsgi"):
        variants.extend(core_variants(interface))
    variants.extend(asgi_peer_variants())
    variants.extend(wsgi_peer_variants())
    return variants


def core_variants(interface: Interface) -> list[Variant]:
    bare = App(interface, "bare", "bare")
    raw_get = App(interface, "raw-get", "bare")
    eager = App(interface, "bearer_mw", "bare", ("bearer_mw",))
    lazy = App(interface, "bearer_mw-lazy", "bare", ("bearer_mw",))
    prefix = f"{interface}:"
    unbatched = []
    if interface == "asgi":
        unbatched_app = App(interface, "bearer_mw-unbatched", "bare", ("bearer_mw",))
        unbatched.append(
            Variant(prefix + "bearer_mw-unbatched", unbatched_app, "bearer_mw",
                    "valid", OK, "eager mode, valid token, batch_reads=False")
        )  # fmt: skip
    return [
        Variant(prefix + "bare", bare, "bearer_mw", "valid", OK,
                "no authentication; the header is sent and ignored"),
        Variant(prefix + "raw-get", raw_get, "raw", "valid", OK,
                "one hand-written Redis GET of a packed record"),
        Variant(prefix + "bearer_mw", eager, "bearer_mw", "valid", OK,
                "eager mode, valid token"),
        Variant(prefix + "bearer_mw-missing", eager, "bearer_mw", "missing",
                UNAUTHORIZED, "eager mode, no Authorization header"),
        Variant(prefix + "bearer_mw-malformed", eager, "bearer_mw", "malformed",
                BAD_CREDENTIALS, "eager mode, token with characters RFC 6750 forbids"),
        Variant(prefix + "bearer_mw-revoked", eager, "bearer_mw", "revoked",
                UNAUTHORIZED, "eager mode, token of an invalidated session"),
        Variant(prefix + "bearer_mw-idle", eager, "bearer_mw", "idle",
                UNAUTHORIZED, "eager mode, token of a session past its idle timeout"),
        Variant(prefix + "bearer_mw-lazy", lazy, "bearer_mw", "valid", OK,
                "lazy mode, session optional, route never reads it"),
        *unbatched,
    ]  # fmt: skip


def asgi_peer_variants() -> list[Variant]:
    starlette_bare = App("asgi", "starlette-bare", "starlette-bare", ("starlette",))
    starlette_auth = App("asgi", "starlette-auth", "starlette-bare", ("starlette",))
    fastapi_bare = App("asgi", "fastapi-bare", "fastapi-bare", ("fastapi",))
    fastapi_users = App(
        "asgi", "fastapi-users", "fastapi-bare", ("fastapi", "fastapi_users")
    )
    return [
        Variant("asgi:starlette-bare", starlette_bare, "starlette", "valid", OK,
                "Starlette route, no authentication"),
        Variant("asgi:starlette-auth", starlette_auth, "starlette", "valid", OK,
                "Starlette AuthenticationMiddleware, Redis token backend"),
        Variant("asgi:fastapi-bare", fastapi_bare, "fastapi_users", "valid", OK,
                "FastAPI route, no authentication"),
        Variant("asgi:fastapi-users", fastapi_users, "fastapi_users", "valid", OK,
                "fastapi-users BearerTransport and RedisStrategy"),
    ]  # fmt: skip


def wsgi_peer_variants() -> list[Variant]:
    flask_bare = App("wsgi", "flask-bare", "flask-bare", ("flask",))
    flask_auth = App(
        "wsgi", "flask-httpauth", "flask-bare", ("flask", "flask_httpauth")
    )
    return [
        Variant("wsgi:flask-bare", flask_bare, "flask", "valid", OK,
                "Flask route, no authentication"),
        Variant("wsgi:flask-httpauth", flask_auth, "flask", "valid", OK,
                "Flask-HTTPAuth HTTPTokenAuth, Redis lookup"),
    ]  # fmt: skip


ALL_VARIANTS = build_variants()
VARIANTS_BY_NAME = {variant.name: variant for variant in ALL_VARIANTS}

# The variants that the concurrency sweep and the stored-sessions sweep run.
CONCURRENCY_VARIANTS = (
    "asgi:bare", "asgi:raw-get", "asgi:bearer_mw", "asgi:bearer_mw-unbatched",
    "wsgi:bare", "wsgi:raw-get", "wsgi:bearer_mw",
)  # fmt: skip
SESSIONS_VARIANTS = ("asgi:raw-get", "asgi:bearer_mw", "wsgi:raw-get", "wsgi:bearer_mw")


def select_variants(patterns: str | None) -> list[Variant]:
    """Return the variants that match comma-separated names or shell patterns.

    Raises ValueError for a pattern that matches nothing.
    """
    if not patterns:
        return list(ALL_VARIANTS)
    selected: list[Variant] = []
    for pattern in (part.strip() for part in patterns.split(",")):
        if not pattern:
            continue
        matches = [v for v in ALL_VARIANTS if fnmatch.fnmatchcase(v.name, pattern)]
        if not matches:
            known = ", ".join(VARIANTS_BY_NAME)
            raise ValueError(f"no variant matches {pattern!r}; known variants: {known}")
        selected.extend(matches)
    return [variant for variant in ALL_VARIANTS if variant in selected]
