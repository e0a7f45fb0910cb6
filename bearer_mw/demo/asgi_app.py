"""The demo as a plain ASGI app, behind :class:`~bearer_mw.AsyncBearerMiddleware`."""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable

from ..asgi import AsyncBearerMiddleware, _app_path
from ..async_store import AsyncSessionStore
from ..config import AUTH_KEY, SESSION_KEY
from ..errors import StoreUnavailableError
from ..request_auth import AsyncRequestAuth
from ..session import Session
from .endpoints import (
    INDEX_PATH,
    LOGGED_OUT,
    LOGIN_PATH,
    LOGOUT_ALL_PATH,
    LOGOUT_PATH,
    MAX_LOGIN_BODY,
    MIDDLEWARE_SETTINGS,
    NO_SESSION,
    RECORD_KEY,
    STORE_UNAVAILABLE,
    LoginError,
    RequestRecord,
    Response,
    error_response,
    index_response,
    log_request,
    login_response,
    logout_all_response,
    parse_login,
    route_error,
    session_response,
)

__all__ = ["create_asgi_app"]

logger = logging.getLogger("bearer_mw.demo")

Scope = dict[str, Any]
ASGIApp = Any


def create_asgi_app(
    store: AsyncSessionStore, *, close_client_on_shutdown: bool = False
) -> ASGIApp:
    """Build the demo app with the middleware in front and a request log around it.

    With ``close_client_on_shutdown``, the lifespan shutdown event closes the
    store's Redis client, inside the server's event loop.
    """
    app = DemoApp(store, close_client_on_shutdown=close_client_on_shutdown)
    return RequestLogger(AsyncBearerMiddleware(app, store, **MIDDLEWARE_SETTINGS))


class _BodyTooLargeError(Exception):
    pass


class _DisconnectError(Exception):
    pass


class DemoApp:
    """The endpoints of the demo; the middleware has checked the token already."""

    def __init__(
        self, store: AsyncSessionStore, *, close_client_on_shutdown: bool = False
    ) -> None:
        self.store = store
        self.close_client_on_shutdown = close_client_on_shutdown

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            # The demo has no websocket endpoint: refuse the handshake.
            await receive()
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
            return

        try:
            response = await self.respond(scope, receive)
        except _DisconnectError:
            return
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in response.header_list()
                ],
                "trailers": False,
            }
        )
        await send(
            {"type": "http.response.body", "body": response.body, "more_body": False}
        )

    async def respond(self, scope: Scope, receive: ASGIReceiveCallable) -> Response:
        """Serve one HTTP request."""
        path = _app_path(scope)
        error = route_error(scope["method"], path)
        if error is not None:
            return error

        session: Session | None = scope.get(SESSION_KEY)
        record: RequestRecord | None = scope.get(RECORD_KEY)
        if session is not None and record is not None:
            record.user_id = session.user_id

        try:
            if path == INDEX_PATH:
                return index_response()
            if path == LOGIN_PATH:
                return await self.login(scope, receive, record)
            if session is None:
                # Unreachable behind the middleware, which requires a session.
                return NO_SESSION
            if path == LOGOUT_PATH:
                auth: AsyncRequestAuth = scope[AUTH_KEY]
                await auth.invalidate()
                return LOGGED_OUT
            if path == LOGOUT_ALL_PATH:
                ended = await self.store.invalidate_user_sessions(session.user_id)
                return logout_all_response(ended)
            return session_response(session)
        except StoreUnavailableError:
            return STORE_UNAVAILABLE

    async def login(
        self, scope: Scope, receive: ASGIReceiveCallable, record: RequestRecord | None
    ) -> Response:
        """Start a session for the user name in the body, without any check."""
        try:
            body = await _read_body(receive)
        except _BodyTooLargeError:
            return error_response(
                413, "invalid_request", f"the login body exceeds {MAX_LOGIN_BODY} bytes"
            )
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
        try:
            login = parse_login(content_type, body)
        except LoginError as error:
            return error.response

        token, session = await self.store.create_session(
            login.user_id, login.attributes
        )
        if record is not None:
            record.user_id = session.user_id
        return login_response(token, session, self.store.now())

    async def lifespan(
        self, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Complete startup and shutdown, closing the Redis client on shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.close_client_on_shutdown:
                    await self.store.client.aclose()
                    logger.debug("closed the Redis client")
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: ASGIReceiveCallable) -> bytes:
    """Read a request body of at most MAX_LOGIN_BODY bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectError
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > MAX_LOGIN_BODY:
            raise _BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RequestLogger:
    """Log method, path, status and user id of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        record = RequestRecord()
        scope = {**scope, RECORD_KEY: record}
        status = 500

        async def capture(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            log_request(
                scope["method"],
                scope["path"],
                status,
                record.user_id,
                time.perf_counter() - started,
            )
