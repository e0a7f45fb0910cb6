"""Flask behind :class:`bearer_mw.BearerMiddleware`.

Run it from the repository root with the Werkzeug development server::

    flask --app examples.flask_app run

or with gunicorn: ``gunicorn examples.flask_app:app``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request

from bearer_mw import BearerMiddleware, Rule, Session
from examples.demo_support import check_password, redis_url_from_environment, sync_store

#: The first matching rule decides; paths that no rule names allow anonymous use.
RULES = [
    Rule("/login", methods=["POST"], public=True),
    Rule("/reports", scopes=["reports:read"]),
    Rule("/me"),
    Rule("/logout"),
]


def create_app(redis_url: str | None = None) -> Flask:
    """Build the app on ``redis_url``, or on fakeredis when it is None."""
    store = sync_store(redis_url)
    app = Flask(__name__)

    @app.get("/")
    def index() -> dict[str, Any]:
        # REMOTE_USER is absent for anonymous requests, so this is None then.
        return {"user": request.remote_user}

    @app.post("/login")
    def login() -> dict[str, Any]:
        form = request.get_json(silent=True) or {}
        scopes = check_password(form.get("username"), form.get("password"))
        if scopes is None:
            abort(401)
        token, _ = store.create_session(form["username"], {"scopes": scopes})
        return {"access_token": token, "token_type": "Bearer"}

    @app.get("/me")
    def me() -> dict[str, Any]:
        session: Session = request.environ["bearer_mw.session"]
        return {
            "user": request.remote_user,
            "auth_type": request.environ["AUTH_TYPE"],
            "scopes": list(session.scopes),
        }

    @app.get("/reports")
    def reports() -> dict[str, Any]:
        return {"user": request.remote_user, "reports": ["2024-q4"]}

    @app.post("/logout")
    def logout() -> dict[str, Any]:
        ended = request.environ["bearer_mw.auth"].invalidate()
        return {"logged_out": ended}

    # Wrapping wsgi_app, not the Flask object, keeps app.run, the test client
    # and the CLI working; all of them call app.wsgi_app.
    app.wsgi_app = BearerMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, store, rules=RULES
    )
    return app


app = create_app(redis_url_from_environment())
