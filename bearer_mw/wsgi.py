"""WSGI middleware: bearer tokens in, session in the environ."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from .challenge import Denial, build_error_response
from .config import AUTH_KEY, SESSION_KEY, MiddlewareConfig
from .errors import StoreUnavailableError
from .header import (
    DEFAULT_MAX_LENGTH,
    classify_without_token,
    parse_authorization,
    read_bearer_token,
)
from .policy import (
    RENEWAL_HEADERS,
    RENEWAL_METHOD,
    STORE_UNAVAILABLE,
    UNKNOWN_SESSION,
    deny_credentials,
    deny_session,
    renewal_body,
)
from .request_auth import RequestAuth
from .rules import REQUIRED, Rule, canonical_path
from .store import SessionStore

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["BearerMiddleware"]

logger = logging.getLogger(__name__)


class BearerMiddleware:
    """Authenticate WSGI requests by bearer token against a :class:`SessionStore`.

    For every request that no public rule covers, the environ gets
    ``bearer_mw.auth``, a :class:`~bearer_mw.request_auth.RequestAuth`. When the
    token names an active session, the environ also gets ``bearer_mw.session``,
    ``REMOTE_USER`` (the user id) and ``AUTH_TYPE`` (``Bearer``).

    Settings:

    - ``required``: reject requests without a valid session (401), unless a
      rule overrides it. Off by default: such requests reach the app
      anonymously.
    - ``lazy``: skip the lookup on routes that do not require a session; the
      app calls ``environ["bearer_mw.auth"].validate()`` when it needs one.
    - ``realm``: the ``realm`` of every challenge.
    - ``renew_path``: a path where a POST with the current token returns a
      new token as JSON.
    - ``rules``: :class:`~bearer_mw.Rule` objects; the first match decides.
    - ``max_header_length``: longest Bearer header accepted; longer is 400.
    - ``allow_preflight``: let CORS preflight requests through untouched.
    - ``retry_after``: seconds sent in ``Retry-After`` with a 503.
    - ``anonymous_when_unavailable``: on routes that do not require a session,
      serve the request anonymously instead of answering 503 when Redis fails.
    """

    def __init__(
        self,
        app: WSGIApplication,
        store: SessionStore,
        *,
        required: bool = False,
        lazy: bool = False,
        realm: str = "api",
        renew_path: str | None = None,
        rules: Sequence[Rule] = (),
        max_header_length: int | None = None,
        allow_preflight: bool = True,
        retry_after: int = 1,
        anonymous_when_unavailable: bool = False,
    ) -> None:
        self.app = app
        self.store = store
        self.config = MiddlewareConfig(
            required=required,
            lazy=lazy,
            realm=realm,
            renew_path=renew_path,
            rules=rules,
            max_header_length=(
                DEFAULT_MAX_LENGTH if max_header_length is None else max_header_length
            ),
            allow_preflight=allow_preflight,
            retry_after=retry_after,
            anonymous_when_unavailable=anonymous_when_unavailable,
        )

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        config = self.config
        method = environ.get("REQUEST_METHOD", "GET")
        if (
            config.allow_preflight
            and method == "OPTIONS"
            and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        ):
            return self.app(environ, start_response)

        path = canonical_path(environ.get("PATH_INFO", "") or "/")
        if path == config.renew_path:
            return self._renew(environ, start_response, method)
        requirement = config.rule_set.requirement_for(path, method)
        if requirement.public:
            return self.app(environ, start_response)

        value = environ.get("HTTP_AUTHORIZATION")
        token = read_bearer_token(value, max_length=config.max_header_length)
        if token is None:
            credentials = classify_without_token(
                value, max_length=config.max_header_length
            )
            denial = deny_credentials(credentials, requirement)
            if denial is not None:
                return self._deny(denial, start_response)

        auth = RequestAuth(self.store, token)
        environ[AUTH_KEY] = auth
        if token is None or (config.lazy and not requirement.required):
            return self._call_app(environ, start_response)

        try:
            session = self.store.find_session(token)
        except StoreUnavailableError:
            if config.anonymous_when_unavailable and not requirement.required:
                return self._call_app(environ, start_response)
            return self._deny(STORE_UNAVAILABLE, start_response)

        auth._remember(session)

        denial = deny_session(session, requirement, config.idle_denial)
        if denial is not None:
            return self._deny(denial, start_response)

        assert session is not None
        environ[SESSION_KEY] = session
        environ["REMOTE_USER"] = session.user_id
        environ["AUTH_TYPE"] = "Bearer"
        return self._call_app(environ, start_response)

    def _call_app(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Run the app, and send a 503 if a lazy lookup finds Redis unavailable.

        ``environ["bearer_mw.auth"].validate()`` raises
        :class:`~bearer_mw.StoreUnavailableError`. When that escapes the app
        call, the 503 goes out through ``start_response``. If the app had
        already called it, the 503 passes ``exc_info``, because PEP 3333 lets
        that replace a status not yet sent. Once it was sent, the server
        raises the error.
        """
        started = False

        def tracking_start_response(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
        ) -> Callable[[bytes], object]:
            nonlocal started
            started = True
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, tracking_start_response)
        except StoreUnavailableError:
            # NOTE: an error raised while the server iterates the response
            # body is not caught here, so a generator app that looks up the
            # session lazily gets the server's own error response.
            exc_info = sys.exc_info() if started else None
            return self._deny(STORE_UNAVAILABLE, start_response, exc_info)

    def _deny(
        self,
        denial: Denial,
        start_response: StartResponse,
        exc_info: OptExcInfo | None = None,
    ) -> list[bytes]:
        logger.debug("request rejected: %d %s", denial.status, denial.error)
        response = build_error_response(
            denial, self.config.realm, retry_after=self.config.retry_after
        )
        if exc_info is None:
            start_response(response.status_line, list(response.headers))
        else:
            start_response(response.status_line, list(response.headers), exc_info)
        return [response.body]

    def _renew(
        self, environ: WSGIEnvironment, start_response: StartResponse, method: str
    ) -> list[bytes]:
        if method != "POST":
            return self._deny(RENEWAL_METHOD, start_response)
        credentials = parse_authorization(
            environ.get("HTTP_AUTHORIZATION"), max_length=self.config.max_header_length
        )
        denial = deny_credentials(credentials, REQUIRED)
        if denial is not None:
            return self._deny(denial, start_response)
        assert credentials.token is not None
        try:
            renewed = self.store.renew_session(credentials.token)
        except StoreUnavailableError:
            return self._deny(STORE_UNAVAILABLE, start_response)
        if renewed is None:
            return self._deny(UNKNOWN_SESSION, start_response)
        token, session = renewed
        body = renewal_body(token, session, self.store.now())
        headers = [*RENEWAL_HEADERS, ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]
