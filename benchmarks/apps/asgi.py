"""ASGI app variants: the bare ceiling, one raw Redis GET, and bearer_mw."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import redis.asyncio

from bearer_mw import AsyncBearerMiddleware, AsyncSessionStore
from benchmarks.apps import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Any arguments, because bearer_mw and Starlette annotate receive and send with
# their own narrower message types.
ASGIApp = Callable[..., Awaitable[None]]


async def send_json(send: Send, status: int, body: bytes) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, settings.user_body(settings.ANONYMOUS_USER_ID))


def build_raw_get_app(client: redis.asyncio.Redis | None = None) -> ASGIApp:
    """Build the raw-get app on ``client``, or on a client of its own."""
    if client is None:
        client = settings.build_async_client()

    async def raw_get_app(scope: Scope, receive: Receive, send: Send) -> None:
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = settings.bearer_credentials(value.decode("latin-1"))
                break
        data = await client.get(settings.RAW_PREFIX + token) if token else None
        if data is None:
            await send_json(send, 401, settings.user_body(None))
            return
        record = settings.unpack_record(data)
        await send_json(send, 200, settings.user_body(record["user_id"]))

    return raw_get_app


async def session_user_app(scope: Scope, receive: Receive, send: Send) -> None:
    session = scope.get("bearer_mw.session")
    user_id = session.user_id if session is not None else None
    await send_json(send, 200, settings.user_body(user_id))


async def ignore_session_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, settings.user_body(None))


def build_bearer_mw_app(
    *,
    lazy: bool,
    client: redis.asyncio.Redis | None = None,
    batch_reads: bool = True,
) -> ASGIApp:
    """Build the bearer_mw app on ``client``, or on a client of its own."""
    if client is None:
        client = settings.build_async_client()
    store = AsyncSessionStore(client, batch_reads=batch_reads)
    inner = ignore_session_app if lazy else session_user_app
    # Lazy mode skips the lookup only on routes that do not require a session, so
    # the lazy variant makes the session optional.
    app: ASGIApp = AsyncBearerMiddleware(inner, store, required=not lazy, lazy=lazy)
    return app


def create_app() -> ASGIApp:
    """Build the ASGI app named by the BENCH_APP environment variable."""
    app_id = settings.app_id()
    if app_id == "bare":
        return bare_app
    if app_id == "raw-get":
        return build_raw_get_app()
    if app_id == "bearer_mw":
        return build_bearer_mw_app(lazy=False)
    if app_id == "bearer_mw-lazy":
        return build_bearer_mw_app(lazy=True)
    if app_id == "bearer_mw-unbatched":
        return build_bearer_mw_app(lazy=False, batch_reads=False)
    if app_id in {"starlette-bare", "starlette-auth"}:
        # Peer packages come with the bench extra, so only their apps import them.
        from benchmarks.apps.starlette_peer import build_starlette_app  # noqa: PLC0415

        return build_starlette_app(with_auth=app_id == "starlette-auth")
    if app_id in {"fastapi-bare", "fastapi-users"}:
        # Peer packages come with the bench extra, so only their apps import them.
        from benchmarks.apps.fastapi_users_peer import build_fastapi_app  # noqa: PLC0415

        return build_fastapi_app(with_auth=app_id == "fastapi-users")
    raise ValueError(f"invalid ASGI app id {app_id!r} in {settings.APP_ID_ENV}")
