"""Opt-in token sources for websocket handshakes, where browsers send no header.

Browsers cannot set ``Authorization`` on a websocket handshake, so a client
may carry its token in one of two places instead:

- ``"query"``: the ``access_token`` query parameter of RFC 6750, section 2.3.
  Query strings end up in server access logs, proxy logs and browser
  history, so a token sent this way should be short-lived.
- ``"subprotocol"``: a ``Sec-WebSocket-Protocol`` value ``bearer.<token>``
  offered beside the subprotocol the app really speaks. Servers rarely log
  this header.

Either way, the middleware removes the token from the scope it passes on
(``query_string``, or ``subprotocols`` and the ``Sec-WebSocket-Protocol``
header), so the app can neither log it nor echo it back as the chosen
subprotocol. A handshake that also sends an ``Authorization`` header is
rejected, because RFC 6750, section 2, allows one way of sending the token.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import unquote_plus

from .header import Credentials, malformed, parse_authorization

__all__ = ["SUBPROTOCOL_PREFIX", "WebSocketTokenSource", "read_websocket_token"]

WebSocketTokenSource = Literal["query", "subprotocol"]
SUBPROTOCOL_PREFIX = "bearer."

NO_CHANGES: dict[str, Any] = {}


def read_websocket_token(
    scope: dict[str, Any], source: WebSocketTokenSource, max_length: int
) -> tuple[Credentials, dict[str, Any]]:
    """Find a token in a websocket handshake.

    Returns the credentials and the scope entries to replace so that the
    token does not reach the app.
    """
    if source == "query":
        return _from_query(scope, max_length)
    return _from_subprotocols(scope, max_length)


def _from_query(
    scope: dict[str, Any], max_length: int
) -> tuple[Credentials, dict[str, Any]]:
    query: bytes = scope.get("query_string", b"")
    if not query:
        return parse_authorization(None), NO_CHANGES
    # Work on the raw pairs, so the other parameters reach the app exactly as
    # sent, and decode each name, so a percent-encoded name is still found.
    tokens = []
    kept = []
    for pair in query.decode("latin-1").split("&"):
        name, _, value = pair.partition("=")
        if unquote_plus(name) == "access_token":
            tokens.append(unquote_plus(value))
        else:
            kept.append(pair)
    if not tokens:
        return parse_authorization(None), NO_CHANGES
    changes = {"query_string": "&".join(kept).encode("latin-1")}
    if len(tokens) > 1:
        return malformed("the request has more than one access_token"), changes
    return parse_authorization(f"Bearer {tokens[0]}", max_length=max_length), changes


def _from_subprotocols(
    scope: dict[str, Any], max_length: int
) -> tuple[Credentials, dict[str, Any]]:
    offered: list[str] = scope.get("subprotocols", [])
    tokens = [p for p in offered if p.startswith(SUBPROTOCOL_PREFIX)]
    if not tokens:
        return parse_authorization(None), NO_CHANGES
    changes = {
        "subprotocols": [p for p in offered if not p.startswith(SUBPROTOCOL_PREFIX)],
        "headers": _headers_without_token(scope["headers"]),
    }
    if len(tokens) > 1:
        return malformed(
            "the handshake offers more than one bearer subprotocol"
        ), changes
    token = tokens[0][len(SUBPROTOCOL_PREFIX) :]
    return parse_authorization(f"Bearer {token}", max_length=max_length), changes


def _headers_without_token(
    headers: Iterable[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]]:
    """Copy the handshake headers with every ``bearer.`` subprotocol removed.

    A ``Sec-WebSocket-Protocol`` line left with no subprotocol is dropped.
    """
    prefix = SUBPROTOCOL_PREFIX.encode("ascii")
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name.lower() != b"sec-websocket-protocol":
            kept.append((name, value))
            continue
        offered = [item.strip() for item in value.split(b",")]
        remaining = [item for item in offered if item and not item.startswith(prefix)]
        if remaining:
            kept.append((name, b", ".join(remaining)))
    return kept
