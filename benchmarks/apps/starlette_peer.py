"""Starlette's AuthenticationMiddleware with a Redis token backend.

The backend follows the pattern of Starlette's authentication docs: read the
Authorization header, reject a header that does not split into scheme and
credentials, and return credentials plus a SimpleUser. The route requires the
"authenticated" scope with ``@requires``.
"""

from __future__ import annotations

import redis.asyncio
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.apps import settings


class RedisTokenBackend(AuthenticationBackend):
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    async def authenticate(
        self, conn: HTTPConnection
    ) -> tuple[AuthCredentials, BaseUser] | None:
        if "Authorization" not in conn.headers:
            return None
        try:
            scheme, token = conn.headers["Authorization"].split()
        except ValueError as exc:
            raise AuthenticationError("Invalid bearer token") from exc
        if scheme.lower() != "bearer":
            return None
        data = await self.client.get(settings.STARLETTE_PREFIX + token)
        if data is None:
            return None
        record = settings.unpack_record(data)
        scopes = ["authenticated", *record["scopes"]]
        return AuthCredentials(scopes), SimpleUser(record["user_id"])


@requires("authenticated", status_code=401)
async def authenticated_me(request: Request) -> JSONResponse:
    return JSONResponse({"user_id": request.user.display_name})


async def anonymous_me(request: Request) -> JSONResponse:
    return JSONResponse({"user_id": settings.ANONYMOUS_USER_ID})


def build_starlette_app(*, with_auth: bool) -> Starlette:
    if not with_auth:
        return Starlette(routes=[Route("/me", anonymous_me)])
    client = settings.build_async_client()
    backend = RedisTokenBackend(client)
    return Starlette(
        routes=[Route("/me", authenticated_me)],
        middleware=[Middleware(AuthenticationMiddleware, backend=backend)],
    )
