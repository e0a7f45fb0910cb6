"""Starlette behind :class:`bearer_mw.AsyncBearerMiddleware`.

bearer_mw fills ``scope["user"]`` and ``scope["auth"]`` in the shape that
Starlette's ``request.user``, ``request.auth`` and ``@requires`` read, so no
Starlette ``AuthenticationMiddleware`` is needed. Run it from the repository
root::

    uvicorn examples.starlette_app:app
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bearer_mw import AsyncBearerMiddleware, Rule, Session
from examples.demo_support import (
    async_store,
    check_password,
    redis_url_from_environment,
)

# bearer_mw rejects requests without a session on /me and /logout. Elsewhere
# it sets an anonymous request.user when no token came, and @requires checks
# the scopes, "authenticated" included for every active session. The login
# route is public: bearer_mw reads no token there, and request.user is the
# anonymous user.
RULES = [
    Rule("/login", methods=["POST"], public=True),
    Rule("/me"),
    Rule("/logout"),
]


def create_app(redis_url: str | None = None) -> Starlette:
    """Build the app on ``redis_url``, or on fakeredis when it is None."""
    store = async_store(redis_url)

    async def index(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse({"user": user.display_name or None})

    async def login(request: Request) -> JSONResponse:
        try:
            form = await request.json()
        except ValueError:
            form = {}
        if not isinstance(form, dict):
            form = {}
        scopes = check_password(form.get("username"), form.get("password"))
        if scopes is None:
            return JSONResponse({"error": "invalid username or password"}, 401)
        token, _ = await store.create_session(form["username"], {"scopes": scopes})
        return JSONResponse({"access_token": token, "token_type": "Bearer"})

    async def me(request: Request) -> JSONResponse:
        session: Session = request.scope["bearer_mw.session"]
        return JSONResponse(
            {
                "user": request.user.display_name,
                "scopes": request.auth.scopes,
                "session_id": session.session_id,
            }
        )

    @requires(["authenticated", "reports:read"])
    async def reports(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name, "reports": ["2024-q4"]})

    async def logout(request: Request) -> JSONResponse:
        ended = await request.scope["bearer_mw.auth"].invalidate()
        return JSONResponse({"logged_out": ended})

    @requires(["authenticated", "reports:read"])
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"user": websocket.user.display_name})
        await websocket.close()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.client.aclose()

    return Starlette(
        routes=[
            Route("/", index),
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/reports", reports),
            Route("/logout", logout, methods=["POST"]),
            WebSocketRoute("/ws", echo),
        ],
        middleware=[Middleware(AsyncBearerMiddleware, store=store, rules=RULES)],
        lifespan=lifespan,
    )


app = create_app(redis_url_from_environment())
