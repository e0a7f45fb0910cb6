"""fastapi-users with BearerTransport and RedisStrategy, wired as its docs show.

The user manager and the database adapter come from dependencies, as in the
fastapi-users configuration guide. The database adapter keeps users in a dict, so
this variant's figures leave out the SQL lookup that a deployment would make.
"""

# No "from __future__ import annotations" here: FastAPI reads the annotations of
# the nested route and dependencies at run time, and string annotations would
# refer to local names that it cannot resolve.
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin
from fastapi_users.authentication import (
    AuthenticationBackend,
    BearerTransport,
    RedisStrategy,
)
from fastapi_users.db import BaseUserDatabase

from benchmarks.apps import settings


@dataclass
class User:
    id: uuid.UUID
    email: str
    hashed_password: str = ""
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = True


class InMemoryUserDatabase(BaseUserDatabase[User, uuid.UUID]):
    """A user table in a dict that creates a user the first time its id is read."""

    def __init__(self) -> None:
        self.users: dict[uuid.UUID, User] = {}

    async def get(self, id: uuid.UUID) -> User | None:
        user = self.users.get(id)
        if user is None:
            user = User(id=id, email=f"{id.hex[:12]}@example.invalid")
            self.users[id] = user
        return user

    async def get_by_email(self, email: str) -> User | None:
        return next((u for u in self.users.values() if u.email == email), None)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = "benchmark-only-secret"
    verification_token_secret = "benchmark-only-secret"


def build_fastapi_app(*, with_auth: bool) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    if not with_auth:

        @app.get("/me")
        async def anonymous_me() -> dict[str, Any]:
            return {"user_id": settings.ANONYMOUS_USER_ID}

        return app

    client = settings.build_async_client(decode_responses=True)
    user_database = InMemoryUserDatabase()

    async def get_user_db() -> AsyncIterator[InMemoryUserDatabase]:
        yield user_database

    async def get_user_manager(
        user_db: Annotated[InMemoryUserDatabase, Depends(get_user_db)],
    ) -> AsyncIterator[UserManager]:
        yield UserManager(user_db)

    def get_redis_strategy() -> RedisStrategy[User, uuid.UUID]:
        return RedisStrategy(client, lifetime_seconds=3600)

    backend = AuthenticationBackend(
        name="redis",
        transport=BearerTransport(tokenUrl="auth/login"),
        get_strategy=get_redis_strategy,
    )
    fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [backend])
    current_active_user = fastapi_users.current_user(active=True)

    @app.get("/me")
    async def authenticated_me(
        user: Annotated[User, Depends(current_active_user)],
    ) -> dict[str, Any]:
        return {"user_id": str(user.id)}

    return app
