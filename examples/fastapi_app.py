"""FastAPI behind :class:`bearer_mw.AsyncBearerMiddleware`.

Routes read the caller through ``request.user`` or through a dependency that
reads the connection's scope, in HTTP and websocket routes alike. Run it from
the repository root::

    uvicorn examples.fastapi_app:app
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, status
from fastapi.exceptions import WebSocketException
from fastapi.requests import HTTPConnection
from pydantic import BaseModel

from bearer_mw import AsyncBearerMiddleware, Rule, Session
from examples.demo_support import (
    async_store,
    check_password,
    redis_url_from_environment,
)

RULES = [Rule("/login", methods=["POST"], public=True)]


class Credentials(BaseModel):
    username: str
    password: str


def current_session(connection: HTTPConnection) -> Session:
    """Return the caller's active session, or reject the request.

    bearer_mw stores the session in the scope only for an active session.
    A websocket handshake is closed with code 1008 (policy violation).
    """
    session: Session | None = connection.scope.get("bearer_mw.session")
    if session is not None:
        return session
    if connection.scope["type"] == "websocket":
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION)
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "this resource requires a bearer token",
        headers={"WWW-Authenticate": 'Bearer realm="api"'},
    )


def require_scope(name: str) -> Callable[..., Awaitable[Session]]:
    """Build a dependency that needs an active session granting ``name``."""

    async def check(session: Annotated[Session, Depends(current_session)]) -> Session:
        if name not in session.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"requires scope {name}")
        return session

    return check


CurrentSession = Annotated[Session, Depends(current_session)]


def create_app(redis_url: str | None = None) -> FastAPI:
    """Build the app on ``redis_url``, or on fakeredis when it is None."""
    store = async_store(redis_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.client.aclose()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(AsyncBearerMiddleware, store=store, rules=RULES)

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        # request.user is anonymous, with an empty display_name, without a token.
        return {"user": request.user.display_name or None}

    @app.post("/login")
    async def login(credentials: Credentials) -> dict[str, str]:
        scopes = check_password(credentials.username, credentials.password)
        if scopes is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid credentials")
        token, _ = await store.create_session(credentials.username, {"scopes": scopes})
        return {"access_token": token, "token_type": "Bearer"}

    @app.get("/me")
    async def me(request: Request, session: CurrentSession) -> dict[str, Any]:
        return {
            "user": request.user.display_name,
            "scopes": request.auth.scopes,
            "session_id": session.session_id,
        }

    @app.get("/reports", dependencies=[Depends(require_scope("reports:read"))])
    async def reports(request: Request) -> dict[str, Any]:
        return {"user": request.user.display_name, "reports": ["2024-q4"]}

    @app.post("/logout")
    async def logout(request: Request, session: CurrentSession) -> dict[str, bool]:
        return {"logged_out": await request.scope["bearer_mw.auth"].invalidate()}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket, session: CurrentSession) -> None:
        await websocket.accept()
        await websocket.send_json(
            {"user": websocket.user.display_name, "session_user": session.user_id}
        )
        await websocket.close()

    return app


app = create_app(redis_url_from_environment())
