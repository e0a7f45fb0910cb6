"""ASGI middleware: bearer tokens in, session and user in the scope."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from asgiref.compatibility import guarantee_single_callable
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable

from .async_store import AsyncSessionStore
from .challenge import Denial, build_error_response
from .config import AUTH_KEY, SESSION_KEY, MiddlewareConfig
from .errors import StoreUnavailableError
from .header import (
    DEFAULT_MAX_LENGTH,
    MULTIPLE_HEADERS,
    SEVERAL_METHODS,
    Credentials,
    CredentialsStatus,
    classify_without_token,
    read_bearer_token,
)
from .policy import (
    RENEWAL_HEADERS,
    RENEWAL_METHOD,
    STORE_UNAVAILABLE,
    UNKNOWN_SESSION,
    deny_credentials,
    deny_session,
    renewal_body,
)
from .request_auth import AsyncRequestAuth
from .rules import REQUIRED, Rule, canonical_path
from .users import ANONYMOUS, anonymous_credentials, authenticated
from .websocket_token import NO_CHANGES, WebSocketTokenSource, read_websocket_token

__all__ = ["AsyncBearerMiddleware"]

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
#: Close code for a rejected websocket handshake: policy violation (RFC 6455).
POLICY_VIOLATION = 1008


class AsyncBearerMiddleware:
    """Authenticate ASGI ``http`` and ``websocket`` connections by bearer token.

    Other scope types, ``lifespan`` included, pass through unchanged. The app
    receives a new scope with ``bearer_mw.auth`` (an
    :class:`~bearer_mw.request_auth.AsyncRequestAuth`), plus ``user`` and
    ``auth`` in the shape Starlette reads. For an active session, ``user`` is a
    :class:`~bearer_mw.users.BearerUser` and ``bearer_mw.session`` contains the
    session. When the request is anonymous and an outer middleware already
    set ``user``, that value is kept. Routes that a public rule covers get an
    anonymous ``user`` and ``auth`` too, so ``request.user`` works there.

    The settings match :class:`~bearer_mw.BearerMiddleware`, plus
    ``websocket_token``: where a websocket handshake may also carry its token
    (``"query"`` for the ``access_token`` query parameter, ``"subprotocol"``
    for a ``bearer.<token>`` subprotocol). Off by default; docs/websockets.md
    describes the risks.
    """

    def __init__(
        self,
        app: Any,
        store: AsyncSessionStore,
        *,
        required: bool = False,
        lazy: bool = False,
        realm: str = "api",
        renew_path: str | None = None,
        rules: Sequence[Rule] = (),
        max_header_length: int | None = None,
        allow_preflight: bool = True,
        retry_after: int = 1,
        anonymous_when_unavailable: bool = False,
        websocket_token: WebSocketTokenSource | None = None,
    ) -> None:
        self.app = guarantee_single_callable(app)  # type: ignore[no-untyped-call]
        self.store = store
        self.websocket_token = websocket_token
        self.config = MiddlewareConfig(
            required=required,
            lazy=lazy,
            realm=realm,
            renew_path=renew_path,
            rules=rules,
            max_header_length=(
                DEFAULT_MAX_LENGTH if max_header_length is None else max_header_length
            ),
            allow_preflight=allow_preflight,
            retry_after=retry_after,
            anonymous_when_unavailable=anonymous_when_unavailable,
        )

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        kind = scope["type"]
        if kind not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return

        config = self.config
        method = scope.get("method", "GET")
        if config.allow_preflight and method == "OPTIONS" and _is_preflight(scope):
            await self.app(scope, receive, send)
            return

        path = _app_path(scope)
        if kind == "http" and path == config.renew_path:
            await self._renew(scope, send, method)
            return
        requirement = config.rule_set.requirement_for(path, method)
        if requirement.public:
            public_scope = dict(scope)
            _set_anonymous(public_scope)
            await self.app(public_scope, receive, send)
            return

        sent, changes = self._credentials(scope)
        if isinstance(sent, str):
            token: str | None = sent
        else:
            denial = deny_credentials(sent, requirement)
            if denial is not None:
                await self._deny(denial, scope, receive, send)
                return
            token = sent.token

        auth = AsyncRequestAuth(self.store, token)
        scope = {**scope, **changes, AUTH_KEY: auth}
        if token is None or (config.lazy and not requirement.required):
            _set_anonymous(scope)
            await self._call_app(scope, receive, send)
            return

        try:
            session = await self.store.find_session(token)
        except StoreUnavailableError:
            if config.anonymous_when_unavailable and not requirement.required:
                _set_anonymous(scope)
                await self._call_app(scope, receive, send)
                return
            await self._deny(STORE_UNAVAILABLE, scope, receive, send)
            return
        auth._remember(session)

        denial = deny_session(session, requirement, config.idle_denial)
        if denial is not None:
            await self._deny(denial, scope, receive, send)
            return

        assert session is not None
        scope[SESSION_KEY] = session
        scope["user"], scope["auth"] = authenticated(session)
        await self._call_app(scope, receive, send)

    async def _call_app(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Run the app, and send a 503 if a lazy lookup finds Redis unavailable.

        The app's own lookups (``await scope["bearer_mw.auth"].validate()``)
        raise :class:`~bearer_mw.StoreUnavailableError`. Before the response
        has started, the middleware turns that into the usual 503. After that,
        or on a websocket, the error propagates to the server.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        # A plain function that returns the server's awaitable, so a send
        # costs no extra coroutine.
        def tracking_send(message: Any) -> Awaitable[None]:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except StoreUnavailableError:
            if started:
                raise
            await self._deny(STORE_UNAVAILABLE, scope, receive, send)

    def _credentials(self, scope: Scope) -> tuple[str | Credentials, dict[str, Any]]:
        """Read the request's credentials and the scope entries that hide them.

        Returns the token of a well-formed Bearer header as it is, and
        :class:`~bearer_mw.header.Credentials` for anything else. Header names
        are compared case-insensitively, because the ASGI specification only
        recommends that servers lowercase them.
        """
        # The length test skips lower() for nearly every other header. A loop,
        # because a list comprehension is a function call of its own before
        # Python 3.12.
        values = []
        for name, value in scope["headers"]:
            if len(name) == 13 and name.lower() == b"authorization":
                values.append(value)
        max_length = self.config.max_header_length
        changes = NO_CHANGES
        if scope["type"] == "websocket" and self.websocket_token is not None:
            alternative, changes = read_websocket_token(
                scope, self.websocket_token, max_length
            )
            if not values:
                return alternative, changes
            if alternative.status is not CredentialsStatus.ABSENT:
                # RFC 6750, section 2: a client sends its token one way only.
                return SEVERAL_METHODS, changes

        if len(values) > 1:
            return MULTIPLE_HEADERS, changes
        value = values[0] if values else None
        token = read_bearer_token(value, max_length=max_length)
        if token is not None:
            return token, changes
        return classify_without_token(value, max_length=max_length), changes

    async def _deny(
        self,
        denial: Denial,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
    ) -> None:
        logger.debug("connection rejected: %d %s", denial.status, denial.error)
        response = build_error_response(
            denial, self.config.realm, retry_after=self.config.retry_after
        )
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers
        ]
        if scope["type"] == "http":
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": headers,
                    "trailers": False,
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": response.body,
                    "more_body": False,
                }
            )
            return

        # A websocket handshake starts with websocket.connect; reading it first
        # keeps servers that expect it in their usual order.
        await receive()
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status,
                    "headers": headers,
                }
            )
            await send(
                {
                    "type": "websocket.http.response.body",
                    "body": response.body,
                    "more_body": False,
                }
            )
            return
        await send(
            {
                "type": "websocket.close",
                "code": POLICY_VIOLATION,
                "reason": denial.description,
            }
        )

    async def _renew(self, scope: Scope, send: ASGISendCallable, method: str) -> None:
        async def deny(denial: Denial) -> None:
            await self._deny(denial, scope, _no_receive, send)

        if method != "POST":
            await deny(RENEWAL_METHOD)
            return
        token, _ = self._credentials(scope)
        if not isinstance(token, str):
            denial = deny_credentials(token, REQUIRED)
            assert denial is not None, "only a Bearer header is read on a renewal"
            await deny(denial)
            return
        try:
            renewed = await self.store.renew_session(token)
        except StoreUnavailableError:
            await deny(STORE_UNAVAILABLE)
            return
        if renewed is None:
            await deny(UNKNOWN_SESSION)
            return
        token, session = renewed
        body = renewal_body(token, session, self.store.now())
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in [*RENEWAL_HEADERS, ("Content-Length", str(len(body)))]
        ]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": headers,
                "trailers": False,
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _no_receive() -> Any:
    raise RuntimeError("an HTTP denial does not read the request")


def _is_preflight(scope: Scope) -> bool:
    return any(
        name.lower() == b"access-control-request-method" for name, _ in scope["headers"]
    )


def _app_path(scope: Scope) -> str:
    """Return the canonical path below the app's mount point, as in WSGI."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        # "/apiadmin" is not below the mount point "/api".
        if not rest or rest.startswith("/"):
            path = rest
    return canonical_path(path or "/")


def _set_anonymous(scope: Scope) -> None:
    if "user" not in scope:
        scope["user"] = ANONYMOUS
        scope["auth"] = anonymous_credentials()
