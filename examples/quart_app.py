"""Quart behind :class:`bearer_mw.AsyncBearerMiddleware`.

Quart's ``request.scope`` and ``websocket.scope`` are the ASGI scope that
bearer_mw filled. Run it from the repository root::

    hypercorn examples.quart_app:app
"""

from __future__ import annotations

from typing import Any

from quart import Quart, abort, request, websocket

from bearer_mw import AsyncBearerMiddleware, Rule, Session
from examples.demo_support import (
    async_store,
    check_password,
    redis_url_from_environment,
)

RULES = [
    Rule("/login", methods=["POST"], public=True),
    Rule("/reports", scopes=["reports:read"]),
    Rule("/me"),
    Rule("/logout"),
    Rule("/ws"),
]


def create_app(redis_url: str | None = None) -> Quart:
    """Build the app on ``redis_url``, or on fakeredis when it is None."""
    store = async_store(redis_url)
    app = Quart(__name__)

    @app.get("/")
    async def index() -> dict[str, Any]:
        # bearer_mw sets an anonymous user, with an empty display_name,
        # when the request carries no token.
        return {"user": request.scope["user"].display_name or None}

    @app.post("/login")
    async def login() -> dict[str, Any]:
        form = await request.get_json(silent=True) or {}
        scopes = check_password(form.get("username"), form.get("password"))
        if scopes is None:
            abort(401)
        token, _ = await store.create_session(form["username"], {"scopes": scopes})
        return {"access_token": token, "token_type": "Bearer"}

    @app.get("/me")
    async def me() -> dict[str, Any]:
        session: Session = request.scope["bearer_mw.session"]
        return {
            "user": session.user_id,
            "scopes": request.scope["auth"].scopes,
            "session_id": session.session_id,
        }

    @app.get("/reports")
    async def reports() -> dict[str, Any]:
        return {"user": request.scope["user"].display_name, "reports": ["2024-q4"]}

    @app.post("/logout")
    async def logout() -> dict[str, Any]:
        return {"logged_out": await request.scope["bearer_mw.auth"].invalidate()}

    @app.websocket("/ws")
    async def echo() -> None:
        await websocket.accept()
        await websocket.send_json({"user": websocket.scope["user"].display_name})

    @app.after_serving
    async def close_store() -> None:
        await store.client.aclose()

    # Wrapping asgi_app, not the Quart object, keeps the test client and
    # app.run working; both call app.asgi_app.
    app.asgi_app = AsyncBearerMiddleware(  # type: ignore[method-assign]
        app.asgi_app, store, rules=RULES
    )
    return app


app = create_app(redis_url_from_environment())
