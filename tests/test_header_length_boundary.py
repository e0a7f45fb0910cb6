"""Both middlewares at the ``max_header_length`` boundary.

The middlewares read a well-formed Bearer header with a fast pattern first and
parse the value in full only when that finds no token, so both steps must
apply the same limit. A header of exactly the limit is looked up, and one
character more is 400 ``invalid_request`` without any Redis command.
"""

from __future__ import annotations

import pytest

from bearer_mw.header import DEFAULT_MAX_LENGTH
from tests.middleware_support import MiddlewareKind, Reply, open_stack

#: Length of "Bearer " followed by an issued token.
ISSUED_HEADER_LENGTH = 63


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request: pytest.FixtureRequest) -> MiddlewareKind:
    kind: MiddlewareKind = request.param
    return kind


def error_of(reply: Reply) -> str | None:
    body = reply.json()
    error: str | None = body.get("error")
    return error


@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_header_of_max_length_is_looked_up(
    kind: MiddlewareKind, required: bool
) -> None:
    with open_stack(
        kind, required=required, max_header_length=ISSUED_HEADER_LENGTH
    ) as stack:
        token = stack.login("ada")
        header = f"Bearer {token}"
        assert len(header) == ISSUED_HEADER_LENGTH

        reply = stack.request(headers=[("Authorization", header)])

    assert reply.status == 200, reply.body
    assert reply.json()["user"] == "ada"
    assert stack.calls.commands == ["GET"]


@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_header_over_max_length_is_400(kind: MiddlewareKind, required: bool) -> None:
    with open_stack(
        kind, required=required, max_header_length=ISSUED_HEADER_LENGTH - 1
    ) as stack:
        token = stack.login("ada")

        reply = stack.request(headers=[("Authorization", f"Bearer {token}")])

    assert reply.status == 400, reply.body
    assert error_of(reply) == "invalid_request"
    challenge = reply.header("WWW-Authenticate")
    assert challenge is not None
    assert 'error="invalid_request"' in challenge
    assert stack.calls.commands == []


@pytest.mark.parametrize(
    ("length", "status", "error"),
    [
        pytest.param(DEFAULT_MAX_LENGTH, 401, "invalid_token", id="max"),
        pytest.param(DEFAULT_MAX_LENGTH + 1, 400, "invalid_request", id="max-plus-one"),
    ],
)
def test_default_max_length_boundary(
    kind: MiddlewareKind, length: int, status: int, error: str
) -> None:
    # A b64token of this length does not have the shape of an issued token, so
    # the store finds no session without sending a command. Only the length
    # decides between 401 and 400.
    header = "Bearer " + "a" * (length - len("Bearer "))
    with open_stack(kind, required=True) as stack:
        reply = stack.request(headers=[("Authorization", header)])

    assert reply.status == status, reply.body
    assert error_of(reply) == error
    assert stack.calls.commands == []
