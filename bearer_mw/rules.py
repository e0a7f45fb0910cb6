"""Route rules: which paths need a session and which scopes, with no I/O.

A pattern is matched against the path below the application's mount point
(``PATH_INFO`` in WSGI, ``path`` without ``root_path`` in ASGI), in canonical
form: see :func:`canonical_path`. ``*`` matches any run of characters within
one path segment and ``**`` matches across segments, so ``/admin/**`` covers
``/admin`` and everything below it.
The first rule that matches a request decides it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["REQUIRED", "Requirement", "Rule", "RuleSet", "canonical_path"]

# RFC 6750, section 3: a scope value in a challenge is made of %x21 / %x23-5B
# / %x5D-7E, and spaces separate the values.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True, slots=True)
class Requirement:
    """Conditions a request must meet: a session, and the scopes it must grant.

    A public requirement skips authentication entirely: no header parsing and
    no Redis call.
    """

    required: bool
    scopes: tuple[str, ...] = ()
    public: bool = False


#: The requirement of an endpoint that only works with a session.
REQUIRED = Requirement(required=True)


@dataclass(frozen=True, slots=True)
class Rule:
    """A path pattern, optionally limited to some methods, and its requirement.

    ``scopes`` implies ``required``. ``public`` rules take no credentials into
    account at all, which suits health checks and login endpoints.
    """

    path: str
    methods: Iterable[str] | None = None
    scopes: Sequence[str] = ()
    public: bool = False
    required: bool = True
    requirement: Requirement = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"rule path {self.path!r} must start with '/'")
        if self.public and self.scopes:
            raise ValueError(f"rule {self.path!r} cannot be public and need scopes")
        if isinstance(self.scopes, str):
            raise TypeError(f"rule {self.path!r}: scopes must be a list of strings")
        for scope in self.scopes:
            if not _SCOPE_TOKEN.fullmatch(scope):
                raise ValueError(
                    f"rule {self.path!r}: scope {scope!r} must be non-empty printable "
                    "ASCII without spaces, double quotes or backslashes"
                )
        requirement = Requirement(
            required=(self.required or bool(self.scopes)) and not self.public,
            scopes=tuple(self.scopes),
            public=self.public,
        )
        methods: frozenset[str] | None = None
        if self.methods is not None:
            listed = [self.methods] if isinstance(self.methods, str) else self.methods
            upper = {method.upper() for method in listed}
            if "GET" in upper:
                # Servers and frameworks serve HEAD with the GET handler.
                upper.add("HEAD")
            methods = frozenset(upper)
        object.__setattr__(self, "requirement", requirement)
        object.__setattr__(self, "_pattern", _compile(_canonical_pattern(self.path)))
        object.__setattr__(self, "_methods", methods)

    def matches(self, path: str, method: str) -> bool:
        """Tell whether this rule applies to a request."""
        if self._methods is not None and method.upper() not in self._methods:
            return False
        return self._pattern.fullmatch(path) is not None


def _canonical_pattern(pattern: str) -> str:
    # Request paths lose their trailing slash before matching, so patterns do
    # too; "/**" and "/*" endings are kept as they are.
    if len(pattern) > 1 and pattern.endswith("/") and not pattern.endswith("*/"):
        return pattern.rstrip("/") or "/"
    return pattern


def _compile(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("/**"):
        # "/admin/**" also covers "/admin" itself.
        stem = _compile(pattern[:-3]).pattern
        return re.compile(f"{stem}(?:/.*)?", re.DOTALL)
    if pattern.endswith("/*"):
        # "/admin/*" also covers "/admin/", which reaches the rules as "/admin".
        stem = _compile(pattern[:-2]).pattern
        return re.compile(f"{stem}(?:/[^/]*)?", re.DOTALL)
    parts = []
    for piece in re.split(r"(/\*\*/|\*\*|\*)", pattern):
        if piece == "/**/":
            # "/a/**/b" covers "/a/b" as well as "/a/x/y/b".
            parts.append("(?:/.*)?/")
        elif piece == "**":
            parts.append(".*")
        elif piece == "*":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts), re.DOTALL)


def canonical_path(path: str) -> str:
    """Reduce a request path to the form that rules and routes agree on.

    Servers pass ``//admin``, ``/./admin`` and ``/x/../admin`` through as sent,
    and routers and static file handlers later serve them as ``/admin``. So
    repeated slashes collapse, ``.`` and ``..`` segments resolve, and a
    trailing slash is dropped, which makes ``Rule("/me")`` cover ``/me/`` too.
    """
    if "//" not in path and "/." not in path and not path.endswith("/"):
        return path
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


class RuleSet:
    """Ordered rules with a default requirement for paths that none matches."""

    __slots__ = ("default", "rules")

    def __init__(self, rules: Sequence[Rule], *, required: bool) -> None:
        self.rules = tuple(rules)
        self.default = Requirement(required=required)

    def requirement_for(self, path: str, method: str) -> Requirement:
        """Find the requirement of one request; ``path`` must be canonical."""
        for rule in self.rules:
            if rule.matches(path, method):
                return rule.requirement
        return self.default
