"""The demo as a WSGI app, behind :class:`~bearer_mw.BearerMiddleware`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request

from ..config import AUTH_KEY, SESSION_KEY
from ..errors import StoreUnavailableError
from ..request_auth import RequestAuth
from ..session import Session
from ..store import SessionStore
from ..wsgi import BearerMiddleware
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

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["create_wsgi_app"]


def create_wsgi_app(store: SessionStore) -> WSGIApplication:
    """Build the demo app with the middleware in front and a request log around it."""
    protected = BearerMiddleware(DemoApp(store), store, **MIDDLEWARE_SETTINGS)
    return RequestLogger(protected)


class DemoApp:
    """The endpoints of the demo; the middleware has checked the token already."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        response = self.respond(Request(environ))
        status_line = f"{response.status} {HTTPStatus(response.status).phrase}"
        start_response(status_line, response.header_list())
        return [response.body]

    def respond(self, request: Request) -> Response:
        """Serve one request."""
        path = request.environ.get("PATH_INFO", "")
        error = route_error(request.method, path)
        if error is not None:
            return error

        session: Session | None = request.environ.get(SESSION_KEY)
        record: RequestRecord | None = request.environ.get(RECORD_KEY)
        if session is not None and record is not None:
            record.user_id = session.user_id

        try:
            if path == INDEX_PATH:
                return index_response()
            if path == LOGIN_PATH:
                return self.login(request, record)
            if session is None:
                # Unreachable behind the middleware, which requires a session.
                return NO_SESSION
            if path == LOGOUT_PATH:
                auth: RequestAuth = request.environ[AUTH_KEY]
                auth.invalidate()
                return LOGGED_OUT
            if path == LOGOUT_ALL_PATH:
                ended = self.store.invalidate_user_sessions(session.user_id)
                return logout_all_response(ended)
            return session_response(session)
        except StoreUnavailableError:
            return STORE_UNAVAILABLE

    def login(self, request: Request, record: RequestRecord | None) -> Response:
        """Start a session for the user name in the body, without any check."""
        length = request.content_length
        if length is not None and length > MAX_LOGIN_BODY:
            return _too_large()
        body = request.stream.read(MAX_LOGIN_BODY + 1)
        if len(body) > MAX_LOGIN_BODY:
            return _too_large()
        try:
            login = parse_login(request.content_type, body)
        except LoginError as error:
            return error.response

        token, session = self.store.create_session(login.user_id, login.attributes)
        if record is not None:
            record.user_id = session.user_id
        return login_response(token, session, self.store.now())


def _too_large() -> Response:
    return error_response(
        413, "invalid_request", f"the login body exceeds {MAX_LOGIN_BODY} bytes"
    )


class RequestLogger:
    """Log method, path, status and user id of every request that reaches it."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        record = RequestRecord()
        environ[RECORD_KEY] = record
        status = 500

        def capture(
            status_line: str,
            headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
        ) -> Callable[[bytes], object]:
            nonlocal status
            status = int(status_line.split(" ", 1)[0])
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, capture)
        finally:
            log_request(
                environ.get("REQUEST_METHOD", "GET"),
                environ.get("PATH_INFO", ""),
                status,
                record.user_id,
                time.perf_counter() - started,
            )
