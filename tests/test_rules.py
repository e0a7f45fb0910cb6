"""Route rules: pattern matching, validation, and enforcement by both middlewares."""

from __future__ import annotations

import pytest

from bearer_mw import Rule
from bearer_mw.rules import RuleSet, canonical_path
from tests.middleware_support import MiddlewareKind, open_stack


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        pytest.param("/health", "/health", True, id="literal"),
        pytest.param("/health", "/health/", False, id="literal-trailing-slash"),
        pytest.param("/users/*", "/users/42", True, id="star-one-segment"),
        pytest.param("/users/*", "/users/42/posts", False, id="star-not-across"),
        pytest.param("/users/*/posts", "/users/42/posts", True, id="star-inside"),
        pytest.param("/admin/**", "/admin", True, id="double-star-covers-stem"),
        pytest.param("/admin/**", "/admin/a/b/c", True, id="double-star-deep"),
        pytest.param("/admin/**", "/administrator", False, id="double-star-boundary"),
        pytest.param("/files/**.txt", "/files/a/b.txt", True, id="double-star-middle"),
        pytest.param("/a.b", "/axb", False, id="dot-is-literal"),
        pytest.param("/v1/(x)", "/v1/(x)", True, id="regex-characters-literal"),
    ],
)
def test_rule_matches_path(pattern: str, path: str, matches: bool) -> None:
    assert Rule(pattern).matches(path, "GET") is matches


def test_rule_methods_case_insensitive() -> None:
    rule = Rule("/items", methods=["post", "Delete"])

    assert rule.matches("/items", "POST")
    assert rule.matches("/items", "DELETE")
    assert not rule.matches("/items", "GET")


def test_rule_requirement_from_scopes() -> None:
    requirement = Rule("/items", scopes=["items:write"], required=False).requirement

    assert requirement.required
    assert requirement.scopes == ("items:write",)
    assert not requirement.public


def test_rule_public_requirement() -> None:
    requirement = Rule("/health", public=True).requirement

    assert requirement.public
    assert not requirement.required


def test_rule_path_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        Rule("health")


def test_rule_public_with_scopes_rejected() -> None:
    with pytest.raises(ValueError, match="cannot be public"):
        Rule("/health", public=True, scopes=["read"])


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("", id="empty"),
        pytest.param("read write", id="space"),
        pytest.param('say"hi', id="double-quote"),
        pytest.param("back\\slash", id="backslash"),
        pytest.param("caf\u00e9", id="non-ascii"),
    ],
)
def test_rule_rejects_scope(scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        Rule("/items", scopes=[scope])


def test_rule_rejects_scopes_string() -> None:
    with pytest.raises(TypeError, match="list of strings"):
        Rule("/items", scopes="read")


def test_rule_set_first_match_wins() -> None:
    rules = RuleSet(
        [Rule("/api/public", public=True), Rule("/api/**", scopes=["api"])],
        required=False,
    )

    assert rules.requirement_for("/api/public", "GET").public
    assert rules.requirement_for("/api/other", "GET").scopes == ("api",)
    assert not rules.requirement_for("/elsewhere", "GET").required


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request: pytest.FixtureRequest) -> MiddlewareKind:
    kind: MiddlewareKind = request.param
    return kind


RULES = [
    Rule("/health", public=True),
    Rule("/docs/**", required=False),
    Rule("/items/*", methods=["GET"], scopes=["items:read"]),
    Rule("/items/*", methods=["PUT", "DELETE"], scopes=["items:write"]),
    Rule("/admin/**", scopes=["admin"]),
]


@pytest.mark.parametrize(
    ("method", "path", "scopes", "status"),
    [
        pytest.param("GET", "/health", None, 200, id="public-anonymous"),
        pytest.param("GET", "/docs/intro", None, 200, id="optional-anonymous"),
        pytest.param("GET", "/other", None, 401, id="default-required"),
        pytest.param("GET", "/other", [], 200, id="default-with-session"),
        pytest.param("GET", "/items/1", [], 403, id="get-without-scope"),
        pytest.param("GET", "/items/1", ["items:read"], 200, id="get-with-read"),
        pytest.param("PUT", "/items/1", ["items:read"], 403, id="put-with-read"),
        pytest.param("PUT", "/items/1", ["items:write"], 200, id="put-with-write"),
        pytest.param("DELETE", "/items/1", None, 401, id="delete-anonymous"),
        pytest.param("GET", "/admin", ["items:read"], 403, id="admin-stem"),
        pytest.param("POST", "/admin/users/7", ["admin"], 200, id="admin-deep"),
    ],
)
def test_rules_enforced(
    kind: MiddlewareKind,
    method: str,
    path: str,
    scopes: list[str] | None,
    status: int,
) -> None:
    with open_stack(kind, rules=RULES, required=True) as stack:
        headers = []
        if scopes is not None:
            token = stack.login("ada", scopes=scopes)
            headers.append(("Authorization", f"Bearer {token}"))

        reply = stack.request(method, path, headers)

    assert reply.status == status


def test_public_path_ignores_header(kind: MiddlewareKind) -> None:
    with open_stack(kind, rules=RULES, required=True) as stack:
        reply = stack.request(path="/health", headers=[("Authorization", "Bearer a b")])

    assert reply.status == 200
    assert reply.json()["has_auth"] is False
    assert stack.calls.commands == []


def test_optional_route_with_session(kind: MiddlewareKind) -> None:
    with open_stack(kind, rules=RULES, required=True) as stack:
        token = stack.login("ada", scopes=["items:read"])

        reply = stack.request(
            path="/docs/intro", headers=[("Authorization", f"Bearer {token}")]
        )

    assert reply.status == 200
    assert reply.json()["user"] == "ada"
    assert reply.json()["scopes"] == ["items:read"]


def test_scopes_string_attribute(kind: MiddlewareKind) -> None:
    with open_stack(kind, rules=RULES) as stack:
        token, _ = stack.sessions.create_session("ada", {"scopes": "admin audit"})

        reply = stack.request(
            path="/admin", headers=[("Authorization", f"Bearer {token}")]
        )

    assert reply.status == 200
    assert reply.json()["scopes"] == ["admin", "audit"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param(
            [("Access-Control-Request-Method", "POST"), ("Origin", "https://a.test")],
            200,
            id="preflight",
        ),
        pytest.param([("Origin", "https://a.test")], 401, id="plain-options"),
    ],
)
def test_preflight_passes_without_credentials(
    kind: MiddlewareKind, headers: list[tuple[str, str]], status: int
) -> None:
    with open_stack(kind, rules=RULES, required=True) as stack:
        reply = stack.request("OPTIONS", "/admin/users", headers)

    assert reply.status == status
    assert stack.calls.commands == []


def test_preflight_checked_when_disabled(kind: MiddlewareKind) -> None:
    with open_stack(kind, required=True, allow_preflight=False) as stack:
        reply = stack.request(
            "OPTIONS", "/items", [("Access-Control-Request-Method", "POST")]
        )

    assert reply.status == 401


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/", "/", id="root"),
        pytest.param("//", "/", id="double-root"),
        pytest.param("/me", "/me", id="plain"),
        pytest.param("/me/", "/me", id="trailing-slash"),
        pytest.param("//me", "/me", id="leading-double-slash"),
        pytest.param("/a//b", "/a/b", id="inner-double-slash"),
        pytest.param("/./me", "/me", id="dot-segment"),
        pytest.param("/x/../me", "/me", id="dot-dot-segment"),
        pytest.param("/../../me", "/me", id="dot-dot-above-root"),
        pytest.param("/a/.b/c", "/a/.b/c", id="dot-prefixed-name-kept"),
    ],
)
def test_canonical_path(path: str, expected: str) -> None:
    assert canonical_path(path) == expected


@pytest.mark.parametrize(
    "path",
    ["/admin", "/admin/", "//admin/x", "/admin/./x", "/public/../admin/x"],
)
def test_rule_covers_path_variants(path: str) -> None:
    rules = RuleSet([Rule("/admin/*", scopes=["admin"])], required=False)

    assert rules.requirement_for(canonical_path(path), "GET").scopes == ("admin",)
