"""A single-file Django project behind bearer_mw, under WSGI and ASGI.

Django's own ``RemoteUserMiddleware`` and ``RemoteUserBackend`` turn the
bearer session's user id into ``request.user``, creating a Django user on
first sight. Run it from the repository root::

    gunicorn examples.django_app:application            # WSGI
    uvicorn examples.django_app:asgi_application --lifespan off   # ASGI

Django rejects ASGI lifespan events, hence ``--lifespan off``.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(32),
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]", "testserver"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    # A named in-memory database with a shared cache: every thread uses the
    # same tables, which ASGI needs because sync views run in another thread.
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "file:bearer_mw_demo?mode=memory&cache=shared",
        }
    },
    # RemoteUserMiddleware logs the user into a Django session on each request;
    # a cache-backed session needs no table. Without REMOTE_USER, the next
    # request is logged out again, so that session cookie grants nothing.
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        f"{__name__}.BearerRemoteUserMiddleware",
    ],
    AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.RemoteUserBackend"],
    USE_TZ=True,
)
django.setup()

# These imports need configured settings.
from django.contrib.auth.middleware import RemoteUserMiddleware  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.handlers.asgi import ASGIRequest  # noqa: E402
from django.core.handlers.wsgi import WSGIRequest  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.http import require_GET, require_POST  # noqa: E402

from bearer_mw import (  # noqa: E402
    AsyncBearerMiddleware,
    BearerMiddleware,
    Rule,
    Session,
    SessionStore,
)
from examples.demo_support import (  # noqa: E402
    async_store,
    check_password,
    redis_url_from_environment,
    sync_store,
)

RULES = [
    Rule("/login", methods=["POST"], public=True),
    Rule("/reports", scopes=["reports:read"]),
    Rule("/me"),
    Rule("/logout"),
]


class BearerRemoteUserMiddleware(RemoteUserMiddleware):
    """Django's ``RemoteUserMiddleware``, reading the bearer user under ASGI too.

    Under WSGI, ``request.META`` is the environ, which already contains
    ``REMOTE_USER``. Django's ASGI request builds ``META`` from the scope's
    headers, client and server only, so this copies the user id from
    ``request.scope``. It also keeps Django on the synchronous path: Django
    5.2's asynchronous path reads ``HTTP_REMOTE_USER``, a header that any
    client can send.
    """

    async_capable = False

    def process_request(self, request: HttpRequest) -> None:
        if isinstance(request, ASGIRequest):
            request.META.pop("REMOTE_USER", None)
            session = request.scope.get("bearer_mw.session")
            if session is not None:
                request.META["REMOTE_USER"] = session.user_id
        super().process_request(request)


class _LoginStore:
    """The store that the login and logout views use.

    Django finds views through the module-level ``urlpatterns``, so the views
    cannot close over a store; each application factory sets this one.
    """

    store: SessionStore


_login = _LoginStore()


def bearer_environ(request: HttpRequest) -> dict[str, Any]:
    """Return where bearer_mw put its keys: the WSGI environ or the ASGI scope."""
    if isinstance(request, ASGIRequest):
        return request.scope
    assert isinstance(request, WSGIRequest)
    return request.environ


@require_GET
def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "remote_user": request.META.get("REMOTE_USER"),
            "user": request.user.get_username() or None,
        }
    )


@require_POST
def login(request: HttpRequest) -> JsonResponse:
    try:
        form = json.loads(request.body or b"{}")
    except ValueError:
        form = {}
    username = form.get("username") if isinstance(form, dict) else None
    password = form.get("password") if isinstance(form, dict) else None
    scopes = check_password(username, password)
    if scopes is None:
        return JsonResponse({"error": "invalid username or password"}, status=401)
    assert isinstance(username, str)
    token, _ = _login.store.create_session(username, {"scopes": scopes})
    return JsonResponse({"access_token": token, "token_type": "Bearer"})


@require_GET
def me(request: HttpRequest) -> JsonResponse:
    session: Session = bearer_environ(request)["bearer_mw.session"]
    return JsonResponse(
        {
            "remote_user": request.META["REMOTE_USER"],
            "user": request.user.get_username(),
            "is_authenticated": request.user.is_authenticated,
            "scopes": list(session.scopes),
        }
    )


@require_GET
def reports(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": request.user.get_username(), "reports": ["2024-q4"]})


@require_POST
def logout(request: HttpRequest) -> JsonResponse:
    token = bearer_environ(request)["bearer_mw.auth"].token
    return JsonResponse({"logged_out": _login.store.invalidate_session(token)})


urlpatterns = [
    path("", index),
    path("login", login),
    path("me", me),
    path("reports", reports),
    path("logout", logout),
]

# The in-memory database starts empty in every process.
call_command("migrate", interactive=False, verbosity=0)


def create_wsgi_application(redis_url: str | None = None) -> BearerMiddleware:
    """Build the WSGI app on ``redis_url``, or on fakeredis when it is None."""
    store = sync_store(redis_url)
    _login.store = store
    return BearerMiddleware(get_wsgi_application(), store, rules=RULES)


def create_asgi_application(redis_url: str | None = None) -> AsyncBearerMiddleware:
    """Build the ASGI app on ``redis_url``, or on fakeredis when it is None.

    The login and logout views are synchronous Django views, so they use a
    synchronous store on the same Redis.
    """
    _login.store = sync_store(redis_url)
    return AsyncBearerMiddleware(
        get_asgi_application(), async_store(redis_url), rules=RULES
    )


application = create_wsgi_application(redis_url_from_environment())
asgi_application = create_asgi_application(redis_url_from_environment())
