"""Error responses: the challenge builder, then both middlewares end to end.

Every test below the unit tests runs once per middleware through the
``kind`` fixture, so the WSGI and ASGI responses cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug.datastructures import WWWAuthenticate

from bearer_mw import ConfigurationError, Rule
from bearer_mw.challenge import Denial, build_error_response, check_realm
from bearer_mw.header import CredentialsStatus
from bearer_mw.policy import NO_CREDENTIALS, STORE_UNAVAILABLE
from tests.middleware_support import (
    HEADER_CASES,
    ManualClock,
    MiddlewareKind,
    Reply,
    Stack,
    open_stack,
)


def challenge_of(reply: Reply) -> tuple[str, dict[str, str]]:
    """Parse the reply's only WWW-Authenticate value into scheme and parameters."""
    value = reply.header("WWW-Authenticate")
    assert value is not None, "the response carries no challenge"
    parsed = WWWAuthenticate.from_header(value)
    assert parsed is not None, f"unparseable challenge {value!r}"
    return parsed.type, dict(parsed.parameters)


def header_map(response_headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in response_headers}


# The challenge builder, without a middleware.


def test_build_bare_challenge() -> None:
    response = build_error_response(NO_CREDENTIALS, "api")
    headers = header_map(response.headers)

    assert response.status_line == "401 Unauthorized"
    assert headers["www-authenticate"] == 'Bearer realm="api"'
    assert json.loads(response.body) == {
        "error_description": NO_CREDENTIALS.description
    }


def test_build_invalid_request_challenge() -> None:
    denial = Denial(400, "invalid_request", "the header lists several credentials")
    response = build_error_response(denial, "api")

    assert response.status_line == "400 Bad Request"
    assert header_map(response.headers)["www-authenticate"] == (
        'Bearer realm="api", error="invalid_request", '
        'error_description="the header lists several credentials"'
    )


def test_build_insufficient_scope_challenge() -> None:
    denial = Denial(403, "insufficient_scope", "more scope needed", ("read", "write"))
    response = build_error_response(denial, "api")

    assert response.status_line == "403 Forbidden"
    assert header_map(response.headers)["www-authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="more scope needed", scope="read write"'
    )
    assert json.loads(response.body) == {
        "error": "insufficient_scope",
        "error_description": "more scope needed",
        "scope": "read write",
    }


def test_build_unavailable_response() -> None:
    response = build_error_response(STORE_UNAVAILABLE, "api", retry_after=7)
    headers = header_map(response.headers)

    assert response.status_line == "503 Service Unavailable"
    assert headers["retry-after"] == "7"
    assert "www-authenticate" not in headers


@pytest.mark.parametrize(
    "denial",
    [
        pytest.param(NO_CREDENTIALS, id="401"),
        pytest.param(Denial(400, "invalid_request", "bad"), id="400"),
        pytest.param(Denial(403, "insufficient_scope", "no", ("a",)), id="403"),
        pytest.param(STORE_UNAVAILABLE, id="503"),
        pytest.param(Denial(405, None, "use POST"), id="405"),
    ],
)
def test_build_response_headers(denial: Denial) -> None:
    response = build_error_response(denial, "api")
    headers = header_map(response.headers)

    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(response.body))


def test_build_method_not_allowed_lists_post() -> None:
    response = build_error_response(Denial(405, None, "use POST"), "api")

    assert header_map(response.headers)["allow"] == "POST"


def test_build_challenge_parses_back() -> None:
    denial = Denial(403, "insufficient_scope", "needs a, b; and c", ("a:b", "c/d"))
    value = header_map(build_error_response(denial, "my realm").headers)[
        "www-authenticate"
    ]
    parsed = WWWAuthenticate.from_header(value)

    assert parsed is not None
    assert parsed.type == "bearer"
    assert dict(parsed.parameters) == {
        "realm": "my realm",
        "error": "insufficient_scope",
        "error_description": "needs a, b; and c",
        "scope": "a:b c/d",
    }


@pytest.mark.parametrize(
    "realm",
    [
        pytest.param('say "hi"', id="double-quote"),
        pytest.param("back\\slash", id="backslash"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param("line\nbreak", id="line-break"),
    ],
)
def test_check_realm_rejects(realm: str) -> None:
    with pytest.raises(ConfigurationError):
        check_realm(realm)


def test_check_realm_accepts_printable() -> None:
    assert check_realm("api v2 (staff)") == "api v2 (staff)"


def test_denial_rejects_quote_in_description() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        Denial(400, "invalid_request", 'bad "value"')


# Both middlewares, end to end.


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request: pytest.FixtureRequest) -> MiddlewareKind:
    kind: MiddlewareKind = request.param
    return kind


@pytest.fixture
def required_stack(kind: MiddlewareKind) -> Iterator[Stack]:
    with open_stack(kind, required=True) as stack:
        yield stack


def check_required_case(
    stack: Stack, value: bytes, status: CredentialsStatus, required_status: int
) -> None:
    reply = stack.request(headers=[("Authorization", value)])

    assert reply.status == required_status
    assert reply.header("Cache-Control") == "no-store"
    scheme, parameters = challenge_of(reply)
    assert scheme == "bearer"
    assert parameters["realm"] == "api"
    if required_status == 400:
        assert parameters["error"] == "invalid_request"
    if status in (CredentialsStatus.ABSENT, CredentialsStatus.OTHER_SCHEME):
        assert "error" not in parameters
    if status is not CredentialsStatus.BEARER:
        assert stack.calls.commands == []


@pytest.mark.parametrize(("value", "status", "token", "required_status"), HEADER_CASES)
def test_required_header_table(
    required_stack: Stack,
    value: bytes,
    status: CredentialsStatus,
    token: str | None,
    required_status: int,
) -> None:
    check_required_case(required_stack, value, status, required_status)


@pytest.mark.parametrize(("value", "status", "token", "required_status"), HEADER_CASES)
def test_required_header_table_real_redis(
    kind: MiddlewareKind,
    redis_url: str,
    value: bytes,
    status: CredentialsStatus,
    token: str | None,
    required_status: int,
) -> None:
    with open_stack(kind, redis_url=redis_url, required=True) as stack:
        check_required_case(stack, value, status, required_status)


def test_required_real_redis_session(kind: MiddlewareKind, redis_url: str) -> None:
    with open_stack(kind, redis_url=redis_url, required=True) as stack:
        token = stack.login("ada")

        reply = stack.request(headers=[("Authorization", f"Bearer {token}")])

    assert reply.status == 200
    assert reply.json()["user"] == "ada"
    assert stack.calls.commands == ["GET"]


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("Bearer {}", id="canonical"),
        pytest.param("bearer {}", id="scheme-lowercase"),
        pytest.param("BEARER {}", id="scheme-uppercase"),
        pytest.param("Bearer   {}", id="several-spaces"),
        pytest.param("  Bearer {}  ", id="surrounding-spaces"),
    ],
)
def test_required_valid_token_forms(required_stack: Stack, template: str) -> None:
    token = required_stack.login("ada")

    reply = required_stack.request(headers=[("Authorization", template.format(token))])

    assert reply.status == 200
    assert reply.json() == {
        "user": "ada",
        "auth_type": "Bearer",
        "scopes": [],
        "has_auth": True,
    }


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("Bearer\t{}", id="tab-after-scheme"),
        pytest.param("Bearer {}, Bearer {}", id="same-token-twice"),
        pytest.param("Basic dXNlcg==, Bearer {}", id="after-basic"),
        pytest.param("Bearer {}\x00", id="nul-after-token"),
        pytest.param("Bearer {} extra", id="text-after-token"),
        pytest.param("Bearer {}=x", id="equals-inside"),
        pytest.param("Bearer {}" + "A" * 2000, id="oversized"),
        pytest.param("Bearer {}\u00e9", id="non-ascii-after-token"),
    ],
)
def test_malformed_real_token_skips_redis(required_stack: Stack, template: str) -> None:
    token = required_stack.login("ada")
    value = template.format(token, token).encode("latin-1")

    reply = required_stack.request(headers=[("Authorization", value)])

    assert reply.status == 400
    assert challenge_of(reply)[1]["error"] == "invalid_request"
    assert required_stack.calls.commands == []


def test_malformed_rejected_in_optional_mode(kind: MiddlewareKind) -> None:
    with open_stack(kind) as stack:
        reply = stack.request(headers=[("Authorization", "Bearer a b")])

    assert reply.status == 400
    assert reply.json()["error"] == "invalid_request"
    assert stack.calls.commands == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="no-header"),
        pytest.param([("Authorization", "Basic dXNlcjpwYXNz")], id="basic"),
    ],
)
def test_optional_anonymous(kind: MiddlewareKind, headers: list[Any]) -> None:
    with open_stack(kind) as stack:
        reply = stack.request(headers=headers)

    assert reply.status == 200
    assert reply.json()["user"] is None
    assert reply.json()["has_auth"] is True
    assert stack.calls.commands == []


def test_required_basic_gets_bare_challenge(required_stack: Stack) -> None:
    reply = required_stack.request(headers=[("Authorization", "Basic dXNlcjpwYXNz")])

    assert reply.status == 401
    assert reply.header("WWW-Authenticate") == 'Bearer realm="api"'


def test_unknown_token_invalid_token(required_stack: Stack) -> None:
    token = required_stack.login("ada")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    reply = required_stack.request(headers=[("Authorization", f"Bearer {forged}")])

    assert reply.status == 401
    _, parameters = challenge_of(reply)
    assert parameters["error"] == "invalid_token"
    assert reply.json() == {
        "error": "invalid_token",
        "error_description": parameters["error_description"],
    }
    assert required_stack.calls.commands == ["GET"]


def test_revoked_token_invalid_token(required_stack: Stack) -> None:
    token = required_stack.login("ada")
    required_stack.sessions.invalidate_session(token)

    reply = required_stack.request(headers=[("Authorization", f"Bearer {token}")])

    assert reply.status == 401
    assert challenge_of(reply)[1]["error"] == "invalid_token"


def test_insufficient_scope_challenge(kind: MiddlewareKind) -> None:
    rules = [Rule("/reports/**", scopes=["reports:read", "reports:export"])]
    with open_stack(kind, rules=rules, realm="staff area") as stack:
        token = stack.login("ada", scopes=["reports:read"])

        reply = stack.request(
            path="/reports/2024", headers=[("Authorization", f"Bearer {token}")]
        )

    assert reply.status == 403
    assert reply.header("Cache-Control") == "no-store"
    scheme, parameters = challenge_of(reply)
    assert scheme == "bearer"
    assert parameters["realm"] == "staff area"
    assert parameters["error"] == "insufficient_scope"
    assert parameters["scope"] == "reports:read reports:export"
    assert reply.json() == {
        "error": "insufficient_scope",
        "error_description": parameters["error_description"],
        "scope": "reports:read reports:export",
    }


def test_sufficient_scope_passes(kind: MiddlewareKind) -> None:
    rules = [Rule("/reports/**", scopes=["reports:read"])]
    with open_stack(kind, rules=rules) as stack:
        token = stack.login("ada", scopes=["reports:read", "profile"])

        reply = stack.request(
            path="/reports", headers=[("Authorization", f"Bearer {token}")]
        )

    assert reply.status == 200
    assert reply.json()["scopes"] == ["reports:read", "profile"]


def test_configured_realm_in_challenge(kind: MiddlewareKind) -> None:
    with open_stack(kind, required=True, realm="example.org") as stack:
        reply = stack.request()

    assert reply.header("WWW-Authenticate") == 'Bearer realm="example.org"'


def test_invalid_realm_rejected_at_construction(kind: MiddlewareKind) -> None:
    with pytest.raises(ConfigurationError), open_stack(kind, realm='a"b'):
        pass


@pytest.mark.parametrize(
    ("required", "anonymous_when_unavailable", "status"),
    [
        pytest.param(True, False, 503, id="required"),
        pytest.param(False, False, 503, id="optional"),
        pytest.param(True, True, 503, id="required-with-fallback"),
        pytest.param(False, True, 200, id="optional-with-fallback"),
    ],
)
def test_store_outage_status(
    kind: MiddlewareKind,
    required: bool,
    anonymous_when_unavailable: bool,
    status: int,
) -> None:
    with open_stack(
        kind,
        failing=True,
        required=required,
        anonymous_when_unavailable=anonymous_when_unavailable,
        retry_after=7,
    ) as stack:
        token = stack.login("ada")
        reply = stack.request(headers=[("Authorization", f"Bearer {token}")])

    assert reply.status == status
    assert stack.calls.commands
    if status == 503:
        assert reply.header("Retry-After") == "7"
        assert reply.header("Cache-Control") == "no-store"
        assert reply.header("WWW-Authenticate") is None
    else:
        assert reply.json()["user"] is None


def lazy_wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["bearer_mw.auth"].validate()
    body = json.dumps({"user": session.user_id if session else None}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def lazy_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    session = await scope["bearer_mw.auth"].validate()
    body = json.dumps({"user": session.user_id if session else None}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_lazy_lookup_outage_answers_503(kind: MiddlewareKind) -> None:
    with open_stack(
        kind, failing=True, lazy=True, wsgi_app=lazy_wsgi_app, asgi_app=lazy_asgi_app
    ) as stack:
        token = stack.login("ada")
        reply = stack.request(headers=[("Authorization", f"Bearer {token}")])

    assert reply.status == 503
    assert reply.header("Retry-After") == "1"
    assert reply.json()["error_description"] == STORE_UNAVAILABLE.description


def test_lazy_lookup_in_app(kind: MiddlewareKind) -> None:
    with open_stack(
        kind, lazy=True, wsgi_app=lazy_wsgi_app, asgi_app=lazy_asgi_app
    ) as stack:
        token = stack.login("ada")
        anonymous = stack.request()
        assert stack.calls.commands == []

        reply = stack.request(headers=[("Authorization", f"Bearer {token}")])

    assert anonymous.json() == {"user": None}
    assert reply.json() == {"user": "ada"}
    assert stack.calls.commands == ["GET"]


def inner_401_wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response(
        "401 Unauthorized",
        [("WWW-Authenticate", 'Basic realm="inner"'), ("Content-Type", "text/plain")],
    )
    return [b"inner says no"]


async def inner_401_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"www-authenticate", b'Basic realm="inner"'),
                (b"content-type", b"text/plain"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"inner says no"})


def test_inner_app_401_untouched(kind: MiddlewareKind) -> None:
    with open_stack(
        kind, wsgi_app=inner_401_wsgi_app, asgi_app=inner_401_asgi_app
    ) as stack:
        token = stack.login("ada")

        reply = stack.request(headers=[("Authorization", f"Bearer {token}")])

    assert reply.status == 401
    assert reply.header_values("WWW-Authenticate") == ['Basic realm="inner"']
    assert reply.header("Cache-Control") is None
    assert reply.body == b"inner says no"


# The renew endpoint.


RENEW_PATH = "/auth/renew"


def iso_milliseconds(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_renew_returns_new_token(kind: MiddlewareKind) -> None:
    clock = ManualClock()
    with open_stack(kind, clock=clock, renew_path=RENEW_PATH, required=True) as stack:
        token = stack.login("ada", scopes=["read"])
        clock.now += 5_000

        reply = stack.request(
            "POST", RENEW_PATH, [("Authorization", f"Bearer {token}")]
        )
        document = reply.json()
        old = stack.request(headers=[("Authorization", f"Bearer {token}")])
        new = stack.request(
            headers=[("Authorization", f"Bearer {document['access_token']}")]
        )

    assert reply.status == 200
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("Pragma") == "no-cache"
    assert document["access_token"] != token
    assert document["token_type"] == "Bearer"
    assert document["expires_in"] == 86_400
    active_expires = clock.now + 86_400_000
    idle_expires = active_expires + 14 * 86_400_000
    assert document["active_expires_at"] == iso_milliseconds(active_expires)
    assert document["idle_expires_at"] == iso_milliseconds(idle_expires)
    assert old.status == 401
    assert new.status == 200
    assert new.json()["scopes"] == ["read"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_renew_other_method_405(kind: MiddlewareKind, method: str) -> None:
    with open_stack(kind, renew_path=RENEW_PATH) as stack:
        token = stack.login("ada")

        reply = stack.request(
            method, RENEW_PATH, [("Authorization", f"Bearer {token}")]
        )

    assert reply.status == 405
    assert reply.header("Allow") == "POST"
    assert reply.header("Cache-Control") == "no-store"
    assert stack.calls.commands == []


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        pytest.param([], 401, None, id="no-header"),
        pytest.param([("Authorization", "Basic dXNlcg==")], 401, None, id="basic"),
        pytest.param(
            [("Authorization", "Bearer a b")], 400, "invalid_request", id="malformed"
        ),
    ],
)
def test_renew_without_valid_token(
    kind: MiddlewareKind, headers: list[Any], status: int, error: str | None
) -> None:
    with open_stack(kind, renew_path=RENEW_PATH) as stack:
        reply = stack.request("POST", RENEW_PATH, headers)

    assert reply.status == status
    assert challenge_of(reply)[1].get("error") == error


def test_renew_unknown_token_401(kind: MiddlewareKind) -> None:
    with open_stack(kind, renew_path=RENEW_PATH) as stack:
        token = stack.login("ada")
        stack.sessions.invalidate_session(token)

        reply = stack.request(
            "POST", RENEW_PATH, [("Authorization", f"Bearer {token}")]
        )

    assert reply.status == 401
    assert challenge_of(reply)[1]["error"] == "invalid_token"
    assert stack.calls.commands


def test_renew_outage_503(kind: MiddlewareKind) -> None:
    with open_stack(kind, failing=True, renew_path=RENEW_PATH) as stack:
        token = stack.login("ada")
        reply = stack.request(
            "POST", RENEW_PATH, [("Authorization", f"Bearer {token}")]
        )

    assert reply.status == 503
    assert reply.header("Retry-After") == "1"


# Session expiry boundaries, in integer milliseconds.


@pytest.mark.parametrize(
    ("offset", "status", "renew_status"),
    [
        pytest.param(-1, 200, 200, id="active-expiry-minus-1ms"),
        pytest.param(0, 401, 200, id="at-active-expiry"),
        pytest.param(1, 401, 200, id="active-expiry-plus-1ms"),
    ],
)
def test_active_expiry_boundary(
    kind: MiddlewareKind, offset: int, status: int, renew_status: int
) -> None:
    clock = ManualClock()
    with open_stack(kind, clock=clock, renew_path=RENEW_PATH, required=True) as stack:
        token, session = stack.sessions.create_session("ada")
        clock.now = session.active_expires + offset
        headers = [("Authorization", f"Bearer {token}")]

        reply = stack.request(headers=headers)
        renewed = stack.request("POST", RENEW_PATH, headers)

    assert reply.status == status
    if status == 401:
        parameters = challenge_of(reply)[1]
        assert parameters["error"] == "invalid_token"
        assert RENEW_PATH in parameters["error_description"]
    assert renewed.status == renew_status


@pytest.mark.parametrize(
    ("offset", "renew_status"),
    [
        pytest.param(-1, 200, id="idle-expiry-minus-1ms"),
        pytest.param(0, 401, id="at-idle-expiry"),
        pytest.param(1, 401, id="idle-expiry-plus-1ms"),
    ],
)
def test_idle_expiry_boundary(
    kind: MiddlewareKind, offset: int, renew_status: int
) -> None:
    clock = ManualClock()
    with open_stack(kind, clock=clock, renew_path=RENEW_PATH, required=True) as stack:
        token, session = stack.sessions.create_session("ada")
        clock.now = session.idle_expires + offset
        headers = [("Authorization", f"Bearer {token}")]

        reply = stack.request(headers=headers)
        renewed = stack.request("POST", RENEW_PATH, headers)

    assert reply.status == 401
    assert challenge_of(reply)[1]["error"] == "invalid_token"
    assert renewed.status == renew_status
