"""Framework recipes under path tricks, preflights and malformed headers.

The apps here follow ``docs/frameworks/*.md`` and run in process on the
examples' fakeredis store, because no test needs a session that outlives
the process. Requests are raw WSGI environs and ASGI scopes, so paths such
as ``//admin/x`` reach the middleware exactly as a server would pass them:
gunicorn, uvicorn and hypercorn do not normalize the request target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from flask import Flask
from litestar import Litestar, get
from litestar import Request as LitestarRequest
from litestar.middleware import DefineMiddleware
from quart import Quart
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from werkzeug.test import EnvironBuilder, run_wsgi_app

from bearer_mw import AsyncBearerMiddleware, BearerMiddleware, Rule
from examples.demo_support import async_store, sync_store

pytestmark = pytest.mark.anyio

ADMIN_RULES = [Rule("/admin/**")]
SECRET = b"private report"

# Paths that a framework or a file handler resolves to a protected resource
# while the raw path does not match the rule's pattern.
LEADING_DOUBLE_SLASH = "//admin/x"


async def call_asgi(
    app: Any,
    path: str,
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
) -> tuple[int, bytes]:
    """Send one HTTP request through an ASGI app; return the status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    messages: list[dict[str, Any]] = []
    request_sent = False
    response_done = anyio.Event()

    async def receive() -> dict[str, Any]:
        # Return the body once, then http.disconnect after the response ends,
        # as a server does. Streaming responses wait for that disconnect.
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await response_done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            response_done.set()

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(
        m.get("body", b"") for m in messages if m["type"] == "http.response.body"
    )
    return start["status"], body


def call_wsgi(
    app: Any, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Send one request through a WSGI app with ``PATH_INFO`` set verbatim."""
    environ = EnvironBuilder(path="/", method=method, headers=headers).get_environ()
    environ["PATH_INFO"] = path
    body_iter, status, _ = run_wsgi_app(app, environ)
    return int(status.split()[0]), b"".join(body_iter)


def flask_admin_app() -> Flask:
    app = Flask(__name__)

    @app.get("/admin/x")
    def admin() -> dict[str, str]:
        return {"report": SECRET.decode()}

    app.wsgi_app = BearerMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, sync_store(None), rules=ADMIN_RULES
    )
    return app


def quart_admin_app() -> Quart:
    app = Quart(__name__)

    @app.get("/admin/x")
    async def admin() -> dict[str, str]:
        return {"report": SECRET.decode()}

    app.asgi_app = AsyncBearerMiddleware(  # type: ignore[method-assign]
        app.asgi_app, async_store(None), rules=ADMIN_RULES
    )
    return app


def starlette_static_app(directory: Path) -> Starlette:
    return Starlette(
        routes=[Mount("/static", StaticFiles(directory=directory))],
        middleware=[
            Middleware(
                AsyncBearerMiddleware,
                store=async_store(None),
                rules=[Rule("/static/private/**")],
            )
        ],
    )


@pytest.fixture
def static_directory(tmp_path: Path) -> Path:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "report.txt").write_bytes(SECRET)
    (tmp_path / "public.txt").write_bytes(b"public")
    return tmp_path


def test_flask_rule_protects_admin_path() -> None:
    status, _ = call_wsgi(flask_admin_app(), "/admin/x")

    assert status == 401


def test_flask_rule_leading_double_slash() -> None:
    status, body = call_wsgi(flask_admin_app(), LEADING_DOUBLE_SLASH)

    assert SECRET not in body
    assert status == 401


async def test_quart_rule_protects_admin_path() -> None:
    status, _ = await call_asgi(quart_admin_app(), "/admin/x")

    assert status == 401


async def test_quart_rule_leading_double_slash() -> None:
    status, body = await call_asgi(quart_admin_app(), LEADING_DOUBLE_SLASH)

    assert SECRET not in body
    assert status == 401


async def test_starlette_static_rule_protects_file(static_directory: Path) -> None:
    app = starlette_static_app(static_directory)

    status, body = await call_asgi(app, "/static/private/report.txt")

    assert status == 401
    assert SECRET not in body


@pytest.mark.parametrize(
    "path",
    [
        "/static//private/report.txt",
        "/static/./private/report.txt",
        "/static/x/../private/report.txt",
    ],
)
async def test_starlette_static_rule_path_variants(
    static_directory: Path, path: str
) -> None:
    app = starlette_static_app(static_directory)

    status, body = await call_asgi(app, path)

    assert SECRET not in body
    assert status == 401


def test_wsgi_preflight_runs_protected_view() -> None:
    called: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(environ["REQUEST_METHOD"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"deleted"]

    protected = BearerMiddleware(app, sync_store(None), rules=[Rule("/delete-all")])
    status, _ = call_wsgi(
        protected,
        "/delete-all",
        method="OPTIONS",
        headers={"Access-Control-Request-Method": "POST"},
    )

    # NOTE: with the default allow_preflight=True, a request that merely
    # looks like a CORS preflight runs the protected view without a token.
    # Django function views without a method decorator accept OPTIONS.
    assert status == 200
    assert called == ["OPTIONS"]


async def test_starlette_mount_rule_covers_api_prefix() -> None:
    async def admin(request: Request) -> JSONResponse:
        return JSONResponse({"report": SECRET.decode()})

    inner = Starlette(
        routes=[Route("/admin/x", admin)],
        middleware=[
            Middleware(
                AsyncBearerMiddleware, store=async_store(None), rules=ADMIN_RULES
            )
        ],
    )
    outer = Starlette(routes=[Mount("/api", app=inner)])

    for path in ["/api/admin/x", "/api//admin/x", "/api/../admin/x"]:
        status, body = await call_asgi(outer, path)
        assert SECRET not in body, path
        assert status in {401, 404}, path


async def test_starlette_public_route_has_anonymous_user() -> None:
    async def login(request: Request) -> JSONResponse:
        return JSONResponse({"authenticated": request.user.is_authenticated})

    app = Starlette(
        routes=[Route("/login", login)],
        middleware=[
            Middleware(
                AsyncBearerMiddleware,
                store=async_store(None),
                rules=[Rule("/login", public=True)],
            )
        ],
    )

    # A public rule skips credentials, but request.user is still anonymous.
    status, body = await call_asgi(app, "/login")

    assert status == 200
    assert body == b'{"authenticated":false}'


async def test_litestar_public_route_has_anonymous_user() -> None:
    @get("/login")
    async def login(request: LitestarRequest[Any, Any, Any]) -> dict[str, bool]:
        return {"authenticated": bool(request.user.is_authenticated)}

    app = Litestar(
        route_handlers=[login],
        middleware=[
            DefineMiddleware(
                AsyncBearerMiddleware,
                store=async_store(None),
                rules=[Rule("/login", public=True)],
            )
        ],
    )

    # A public rule skips credentials, but request.user is still anonymous.
    status, body = await call_asgi(app, "/login")

    assert status == 200
    assert body == b'{"authenticated":false}'


MALFORMED_AUTHORIZATION = {
    "duplicate": [b"Bearer abc", b"Bearer def"],
    "huge": [b"Bearer " + b"a" * 100_000],
    "latin-1": [b"Bearer \xff\xfe"],
    "control": [b"Bearer a\x01b"],
    "two tokens": [b"Bearer a b"],
    "empty": [b""],
    "hundred headers": [b"Bearer a"] * 100,
}


@pytest.mark.parametrize("case", sorted(MALFORMED_AUTHORIZATION))
async def test_quart_malformed_authorization_no_500(case: str) -> None:
    headers = [(b"authorization", value) for value in MALFORMED_AUTHORIZATION[case]]

    status, body = await call_asgi(quart_admin_app(), "/admin/x", headers=headers)

    assert status in {400, 401}
    assert SECRET not in body


@pytest.mark.parametrize("case", sorted(MALFORMED_AUTHORIZATION))
def test_flask_malformed_authorization_no_500(case: str) -> None:
    # WSGI servers join repeated headers with a comma.
    value = b", ".join(MALFORMED_AUTHORIZATION[case]).decode("latin-1")

    status, body = call_wsgi(
        flask_admin_app(), "/admin/x", headers={"Authorization": value}
    )

    assert status in {400, 401}
    assert SECRET not in body
