"""Flask with Flask-HTTPAuth's HTTPTokenAuth and a Redis lookup per request."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_httpauth import HTTPTokenAuth  # type: ignore[import-untyped]

from benchmarks.apps import settings


def build_flask_app(*, with_auth: bool) -> Flask:
    app = Flask("bench")
    if not with_auth:

        @app.get("/me")
        def anonymous_me() -> dict[str, Any]:
            return {"user_id": settings.ANONYMOUS_USER_ID}

        return app

    client = settings.build_sync_client()
    auth = HTTPTokenAuth(scheme="Bearer")

    @auth.verify_token  # type: ignore[untyped-decorator]
    def verify_token(token: str) -> str | None:
        data = client.get(settings.FLASK_PREFIX + token)
        if data is None:
            return None
        user_id: str = settings.unpack_record(data)["user_id"]
        return user_id

    @app.get("/me")
    @auth.login_required  # type: ignore[untyped-decorator]
    def authenticated_me() -> dict[str, Any]:
        return {"user_id": auth.current_user()}

    return app
