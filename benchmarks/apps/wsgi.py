"""WSGI app variants: the bare ceiling, one raw Redis GET, and bearer_mw."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis

from bearer_mw import BearerMiddleware, SessionStore
from benchmarks.apps import settings

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

STATUS_LINES = {200: "200 OK", 401: "401 Unauthorized"}


def json_response(
    start_response: StartResponse, status: int, body: bytes
) -> list[bytes]:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(STATUS_LINES[status], headers)
    return [body]


def bare_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return json_response(
        start_response, 200, settings.user_body(settings.ANONYMOUS_USER_ID)
    )


def build_raw_get_app(client: redis.Redis | None = None) -> WSGIApp:
    """Build the raw-get app on ``client``, or on a client of its own."""
    if client is None:
        client = settings.build_sync_client()

    def raw_get_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        header = environ.get("HTTP_AUTHORIZATION")
        token = settings.bearer_credentials(header) if header else None
        data = client.get(settings.RAW_PREFIX + token) if token else None
        if data is None:
            return json_response(start_response, 401, settings.user_body(None))
        record = settings.unpack_record(data)
        return json_response(start_response, 200, settings.user_body(record["user_id"]))

    return raw_get_app


def remote_user_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return json_response(
        start_response, 200, settings.user_body(environ.get("REMOTE_USER"))
    )


def ignore_session_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return json_response(start_response, 200, settings.user_body(None))


def build_bearer_mw_app(*, lazy: bool, client: redis.Redis | None = None) -> WSGIApp:
    """Build the bearer_mw app on ``client``, or on a client of its own."""
    if client is None:
        client = settings.build_sync_client()
    store = SessionStore(client)
    inner = ignore_session_app if lazy else remote_user_app
    # Lazy mode skips the lookup only on routes that do not require a session, so
    # the lazy variant makes the session optional.
    app: WSGIApp = BearerMiddleware(inner, store, required=not lazy, lazy=lazy)
    return app


def create_app() -> WSGIApp:
    """Build the WSGI app named by the BENCH_APP environment variable."""
    app_id = settings.app_id()
    if app_id == "bare":
        return bare_app
    if app_id == "raw-get":
        return build_raw_get_app()
    if app_id == "bearer_mw":
        return build_bearer_mw_app(lazy=False)
    if app_id == "bearer_mw-lazy":
        return build_bearer_mw_app(lazy=True)
    if app_id in {"flask-bare", "flask-httpauth"}:
        # Peer packages come with the bench extra, so only their apps import them.
        from benchmarks.apps.flask_peer import build_flask_app  # noqa: PLC0415

        return build_flask_app(with_auth=app_id == "flask-httpauth")
    raise ValueError(f"invalid WSGI app id {app_id!r} in {settings.APP_ID_ENV}")
