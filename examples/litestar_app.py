"""Litestar behind :class:`bearer_mw.AsyncBearerMiddleware`.

Litestar's ``request.user`` and ``request.auth`` read ``scope["user"]`` and
``scope["auth"]``, which bearer_mw sets; ``request.scope`` contains the session.
Run it from the repository root::

    uvicorn examples.litestar_app:app
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, WebSocket, get, post, websocket
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.params import JSONBody

from bearer_mw import AsyncBearerMiddleware, Rule, Session
from examples.demo_support import (
    async_store,
    check_password,
    redis_url_from_environment,
)

# On the public login route bearer_mw reads no token, so request.user is the
# anonymous user there.
RULES = [
    Rule("/login", methods=["POST"], public=True),
    Rule("/me"),
    Rule("/logout"),
    Rule("/ws"),
]


def requires_reports_scope(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: the caller's session must grant ``reports:read``."""
    if "reports:read" not in connection.auth.scopes:
        raise PermissionDeniedException("requires scope reports:read")


def create_app(redis_url: str | None = None) -> Litestar:
    """Build the app on ``redis_url``, or on fakeredis when it is None."""
    store = async_store(redis_url)

    @get("/")
    async def index(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"user": request.user.display_name or None}

    @post("/login", status_code=200)
    async def login(data: JSONBody[dict[str, Any]]) -> dict[str, str]:
        scopes = check_password(data.get("username"), data.get("password"))
        if scopes is None:
            raise NotAuthorizedException("invalid username or password")
        token, _ = await store.create_session(data["username"], {"scopes": scopes})
        return {"access_token": token, "token_type": "Bearer"}

    @get("/me")
    async def me(request: Request[Any, Any, Any]) -> dict[str, Any]:
        session: Session = request.scope["bearer_mw.session"]  # type: ignore[typeddict-item]
        return {
            "user": request.user.display_name,
            "scopes": request.auth.scopes,
            "session_id": session.session_id,
        }

    @get("/reports", guards=[requires_reports_scope])
    async def reports(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"user": request.user.display_name, "reports": ["2024-q4"]}

    @post("/logout", status_code=200)
    async def logout(request: Request[Any, Any, Any]) -> dict[str, bool]:
        auth = request.scope["bearer_mw.auth"]  # type: ignore[typeddict-item]
        return {"logged_out": await auth.invalidate()}

    @websocket("/ws")
    async def echo(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_json({"user": socket.user.display_name})
        await socket.close()

    async def close_store() -> None:
        await store.client.aclose()

    return Litestar(
        route_handlers=[index, login, me, reports, logout, echo],
        middleware=[DefineMiddleware(AsyncBearerMiddleware, store=store, rules=RULES)],
        on_shutdown=[close_store],
    )


app = create_app(redis_url_from_environment())
