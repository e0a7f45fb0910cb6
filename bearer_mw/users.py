"""User and credential objects for the ASGI scope's ``user`` and ``auth`` keys.

They have the attributes that Starlette's ``request.user``, ``request.auth``
and ``@requires`` read (``is_authenticated``, ``display_name``, ``identity``
and ``scopes``) without importing Starlette.
"""

from __future__ import annotations

from dataclasses import dataclass

from .session import Session

__all__ = ["AnonymousUser", "BearerCredentials", "BearerUser"]


class BearerUser:
    """The user behind an active session.

    A plain slotted class rather than a dataclass, because the middleware
    builds one per authenticated request.
    """

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def is_authenticated(self) -> bool:
        """Always true: this user presented an active session."""
        return True

    @property
    def user_id(self) -> str:
        """User id stored with the session."""
        return self.session.user_id

    @property
    def identity(self) -> str:
        """User id, under the name Starlette uses."""
        return self.session.user_id

    @property
    def display_name(self) -> str:
        """User id, as the name to show."""
        return self.session.user_id

    def __repr__(self) -> str:
        return f"BearerUser(user_id={self.session.user_id!r})"


@dataclass(frozen=True, slots=True)
class AnonymousUser:
    """A request without an active session."""

    @property
    def is_authenticated(self) -> bool:
        """Always false."""
        return False

    @property
    def display_name(self) -> str:
        """Empty, as there is nobody to name."""
        return ""

    @property
    def identity(self) -> str:
        """Empty, as there is nobody to name."""
        return ""


class BearerCredentials:
    """Scopes granted to the request, and its session if it has one.

    For a session, ``scopes`` is built on first read: ``authenticated``, the
    name Starlette's ``@requires("authenticated")`` checks, followed by the
    session's grants. Most requests never read it.
    """

    __slots__ = ("_scopes", "session")

    def __init__(
        self, scopes: list[str] | None = None, session: Session | None = None
    ) -> None:
        self._scopes = scopes
        self.session = session

    @property
    def scopes(self) -> list[str]:
        """Granted scope names, as Starlette's ``AuthCredentials`` has them."""
        scopes = self._scopes
        if scopes is None:
            session = self.session
            scopes = ["authenticated", *session.scopes] if session is not None else []
            self._scopes = scopes
        return scopes

    @scopes.setter
    def scopes(self, scopes: list[str]) -> None:
        self._scopes = scopes

    def __repr__(self) -> str:
        return f"BearerCredentials(scopes={self.scopes!r})"


ANONYMOUS = AnonymousUser()


def anonymous_credentials() -> BearerCredentials:
    """Build credentials that grant nothing, fresh for each request."""
    return BearerCredentials([])


def authenticated(session: Session) -> tuple[BearerUser, BearerCredentials]:
    """Build the scope's user and auth values for an active session."""
    return BearerUser(session), BearerCredentials(session=session)
