"""bearer_mw stacked with other middleware, mounted apps and adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from asgiref.wsgi import WsgiToAsgi
from flask import Flask, request
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from bearer_mw import (
    AsyncBearerMiddleware,
    AsyncSessionStore,
    BearerMiddleware,
    Rule,
    SessionStore,
)
from examples.demo_support import async_store
from tests.framework_support import AsyncErrorReporter, ErrorReporter, bearer

ORIGIN = "https://app.example"


@pytest.fixture
def token(redis_url: str) -> str:
    store = SessionStore(redis.Redis.from_url(redis_url))
    token, _ = store.create_session("alice", {"scopes": ["reports:read"]})
    return token


@pytest.fixture
def store(redis_url: str) -> AsyncSessionStore:
    return async_store(redis_url)


def starlette_app(store: AsyncSessionStore, middleware: list[Middleware]) -> Starlette:
    """Build an app whose routes report the scope's user; closes the store."""

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name or None})

    async def large(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.user.display_name * 1000)

    async def fail(request: Request) -> PlainTextResponse:
        raise RuntimeError("view failed")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.client.aclose()

    return Starlette(
        routes=[Route("/", whoami), Route("/large", large), Route("/fail", fail)],
        middleware=middleware,
        lifespan=lifespan,
    )


def bearer_layer(store: AsyncSessionStore, **settings: Any) -> Middleware:
    return Middleware(AsyncBearerMiddleware, store=store, **settings)


# Starlette runs the first middleware in the list outermost.
@pytest.fixture(params=["cors-outside", "cors-inside"])
def cors_client(
    request: pytest.FixtureRequest, store: AsyncSessionStore
) -> Iterator[TestClient]:
    cors = Middleware(
        CORSMiddleware,
        allow_origins=[ORIGIN],
        allow_headers=["Authorization"],
        expose_headers=["WWW-Authenticate"],
    )
    layers = [cors, bearer_layer(store, required=True)]
    if request.param == "cors-inside":
        layers.reverse()
    with TestClient(starlette_app(store, layers)) as client:
        yield client


def test_cors_preflight_passes_either_order(cors_client: TestClient) -> None:
    response = cors_client.options(
        "/",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_cors_authenticated_request_either_order(
    cors_client: TestClient, token: str
) -> None:
    response = cors_client.get("/", headers={"Origin": ORIGIN, **bearer(token)})

    assert response.json() == {"user": "alice"}
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_cors_outside_adds_headers_to_denial(store: AsyncSessionStore) -> None:
    cors = Middleware(CORSMiddleware, allow_origins=[ORIGIN])
    app = starlette_app(store, [cors, bearer_layer(store, required=True)])
    with TestClient(app) as client:
        response = client.get("/", headers={"Origin": ORIGIN})

    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_cors_inside_leaves_denial_bare(store: AsyncSessionStore) -> None:
    cors = Middleware(CORSMiddleware, allow_origins=[ORIGIN])
    app = starlette_app(store, [bearer_layer(store, required=True), cors])
    with TestClient(app) as client:
        response = client.get("/", headers={"Origin": ORIGIN})

    assert response.status_code == 401
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("gzip_outside", [True, False], ids=["outside", "inside"])
def test_gzip_compresses_either_order(
    store: AsyncSessionStore, token: str, gzip_outside: bool
) -> None:
    layers = [Middleware(GZipMiddleware, minimum_size=100), bearer_layer(store)]
    if not gzip_outside:
        layers.reverse()
    with TestClient(starlette_app(store, layers)) as client:
        response = client.get(
            "/large", headers={"Accept-Encoding": "gzip", **bearer(token)}
        )

    assert response.headers["content-encoding"] == "gzip"
    assert response.text == "alice" * 1000


@pytest.mark.parametrize("reporter_outside", [True, False], ids=["outside", "inside"])
def test_asgi_error_reporter_either_order(
    store: AsyncSessionStore, token: str, reporter_outside: bool
) -> None:
    bearer_app = AsyncBearerMiddleware
    inner = starlette_app(store, [])
    if reporter_outside:
        reporter = AsyncErrorReporter(bearer_app(inner, store, rules=[Rule("/fail")]))
        app: Any = reporter
    else:
        reporter = AsyncErrorReporter(inner)
        app = bearer_app(reporter, store, rules=[Rule("/fail")])
    with TestClient(app, raise_server_exceptions=False) as client:
        denied = client.get("/fail")
        failed = client.get("/fail", headers=bearer(token))

    assert denied.status_code == 401
    assert failed.status_code == 500
    assert [str(error) for error in reporter.errors] == ["view failed"]


class ApiKeyBackend(AuthenticationBackend):
    """Authenticates ``X-Api-Key: robot`` as the user ``robot``."""

    async def authenticate(
        self, conn: HTTPConnection
    ) -> tuple[AuthCredentials, SimpleUser] | None:
        if conn.headers.get("x-api-key") != "robot":
            return None
        return AuthCredentials(["robots"]), SimpleUser("robot")


def test_starlette_auth_outside_bearer_wins_with_session(
    store: AsyncSessionStore, token: str
) -> None:
    auth = Middleware(AuthenticationMiddleware, backend=ApiKeyBackend())
    with TestClient(starlette_app(store, [auth, bearer_layer(store)])) as client:
        both = client.get("/", headers={"X-Api-Key": "robot", **bearer(token)})
        key_only = client.get("/", headers={"X-Api-Key": "robot"})
        neither = client.get("/")

    assert both.json() == {"user": "alice"}
    assert key_only.json() == {"user": "robot"}
    assert neither.json() == {"user": None}


def test_starlette_auth_inside_always_wins(
    store: AsyncSessionStore, token: str
) -> None:
    auth = Middleware(AuthenticationMiddleware, backend=ApiKeyBackend())
    with TestClient(starlette_app(store, [bearer_layer(store), auth])) as client:
        both = client.get("/", headers={"X-Api-Key": "robot", **bearer(token)})
        token_only = client.get("/", headers=bearer(token))

    assert both.json() == {"user": "robot"}
    assert token_only.json() == {"user": None}


def test_mounted_asgi_app_rules_below_root_path(
    store: AsyncSessionStore, token: str
) -> None:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name})

    inner = AsyncBearerMiddleware(
        Starlette(routes=[Route("/me", me)]), store, rules=[Rule("/me")]
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.client.aclose()

    app = Starlette(routes=[Mount("/api", app=inner)], lifespan=lifespan)
    with TestClient(app) as client:
        anonymous = client.get("/api/me")
        authenticated = client.get("/api/me", headers=bearer(token))

    assert anonymous.status_code == 401
    assert authenticated.json() == {"user": "alice"}


def test_asgi2_double_callable_app(store: AsyncSessionStore, token: str) -> None:
    class LegacyApp:
        """An ASGI 2 app: constructed with the scope, then called."""

        def __init__(self, scope: dict[str, Any]) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            if self.scope["type"] == "lifespan":
                message = await receive()
                while message["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                    message = await receive()
                await store.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
            body = self.scope["user"].display_name.encode() or b"anonymous"
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

    app = AsyncBearerMiddleware(LegacyApp, store)
    with TestClient(app) as client:
        authenticated = client.get("/", headers=bearer(token))
        anonymous = client.get("/")

    assert authenticated.text == "alice"
    assert anonymous.text == "anonymous"


def flask_whoami(redis_url: str) -> tuple[Flask, SessionStore]:
    app = Flask(__name__)

    @app.get("/me")
    def me() -> dict[str, Any]:
        return {"user": request.remote_user, "remote_addr": request.remote_addr}

    @app.get("/fail")
    def fail() -> str:
        raise RuntimeError("view failed")

    return app, SessionStore(redis.Redis.from_url(redis_url))


@pytest.mark.parametrize("proxy_outside", [True, False], ids=["outside", "inside"])
def test_proxy_fix_either_order(
    redis_url: str, token: str, proxy_outside: bool
) -> None:
    app, store = flask_whoami(redis_url)
    rules = [Rule("/me")]
    if proxy_outside:
        app.wsgi_app = ProxyFix(BearerMiddleware(app.wsgi_app, store, rules=rules))  # type: ignore[method-assign]
    else:
        app.wsgi_app = BearerMiddleware(ProxyFix(app.wsgi_app), store, rules=rules)  # type: ignore[method-assign]
    client = app.test_client()

    response = client.get(
        "/me", headers={"X-Forwarded-For": "203.0.113.9", **bearer(token)}
    )

    assert response.get_json() == {"user": "alice", "remote_addr": "203.0.113.9"}
    assert client.get("/me").status_code == 401


@pytest.mark.parametrize("reporter_outside", [True, False], ids=["outside", "inside"])
def test_wsgi_error_reporter_either_order(
    redis_url: str, token: str, reporter_outside: bool
) -> None:
    app, store = flask_whoami(redis_url)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    rules = [Rule("/fail")]
    if reporter_outside:
        reporter = ErrorReporter(BearerMiddleware(app.wsgi_app, store, rules=rules))
        stack: Any = reporter
    else:
        reporter = ErrorReporter(app.wsgi_app)
        stack = BearerMiddleware(reporter, store, rules=rules)
    client = Client(stack)

    denied = client.get("/fail")
    failed = client.get("/fail", headers=bearer(token))

    assert denied.status_code == 401
    assert failed.status_code == 500
    assert [str(error) for error in reporter.errors] == ["view failed"]


def test_dispatcher_mount_rules_below_mount(redis_url: str, token: str) -> None:
    app, store = flask_whoami(redis_url)
    protected = BearerMiddleware(app.wsgi_app, store, rules=[Rule("/me")])
    root = Flask("root")
    client = Client(DispatcherMiddleware(root.wsgi_app, {"/api": protected}))

    anonymous = client.get("/api/me")
    authenticated = client.get("/api/me", headers=bearer(token))

    assert anonymous.status_code == 401
    assert authenticated.json["user"] == "alice"


def test_dispatcher_outside_bearer_sees_full_path(redis_url: str, token: str) -> None:
    app, store = flask_whoami(redis_url)
    root = Flask("root")
    dispatcher = DispatcherMiddleware(root.wsgi_app, {"/api": app.wsgi_app})
    client = Client(BearerMiddleware(dispatcher, store, rules=[Rule("/api/me")]))

    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=bearer(token)).json["user"] == "alice"


def test_wsgi_app_through_wsgi_to_asgi(redis_url: str, token: str) -> None:
    app, store = flask_whoami(redis_url)
    app.wsgi_app = BearerMiddleware(app.wsgi_app, store, rules=[Rule("/me")])  # type: ignore[method-assign]
    # Without a with block the test client sends no lifespan events, which
    # WsgiToAsgi rejects.
    client = TestClient(WsgiToAsgi(app))
    anonymous = client.get("/me")
    authenticated = client.get("/me", headers=bearer(token))

    assert anonymous.status_code == 401
    assert authenticated.json()["user"] == "alice"
