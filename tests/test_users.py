"""The scope's ``user`` and ``auth`` values, built from sessions with no I/O."""

from __future__ import annotations

from bearer_mw.session import Session
from bearer_mw.users import (
    ANONYMOUS,
    BearerCredentials,
    BearerUser,
    anonymous_credentials,
    authenticated,
)


def make_session(attributes: dict[str, object]) -> Session:
    return Session(
        session_id="digest",
        user_id="ada",
        attributes=attributes,
        created=1,
        active_expires=2,
        idle_expires=3,
        state="active",
    )


def test_authenticated_scopes_list_session_grants() -> None:
    user, credentials = authenticated(make_session({"scopes": "read write"}))

    assert isinstance(user, BearerUser)
    assert user.identity == "ada"
    assert credentials.scopes == ["authenticated", "read", "write"]


def test_authenticated_scopes_built_once() -> None:
    _, credentials = authenticated(make_session({"scopes": ["read"]}))

    first = credentials.scopes
    first.append("added")

    # Code written for Starlette may extend the list in place, and the change is kept.
    assert credentials.scopes is first
    assert credentials.scopes == ["authenticated", "read", "added"]


def test_credentials_scopes_can_be_replaced() -> None:
    _, credentials = authenticated(make_session({"scopes": ["read"]}))

    credentials.scopes = ["custom"]

    assert credentials.scopes == ["custom"]
    assert repr(credentials) == "BearerCredentials(scopes=['custom'])"


def test_credentials_without_session_grant_nothing() -> None:
    assert BearerCredentials().scopes == []
    assert anonymous_credentials().scopes == []
    assert anonymous_credentials() is not anonymous_credentials()
    assert ANONYMOUS.is_authenticated is False


def test_session_without_scopes_is_only_authenticated() -> None:
    _, credentials = authenticated(make_session({}))

    assert credentials.session is not None
    assert credentials.scopes == ["authenticated"]
