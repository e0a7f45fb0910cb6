"""Redis clients with bounded timeouts and pools, built from a URL.

The session stores retry a failed call once on a fresh connection, so the
clients built here turn redis-py's own retries off. A store call then takes at
most about two timeouts, plus any wait for a pooled connection, before the
middleware responds with 503.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ConfigurationError
from .topologies import topology_from_url

__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_TIMEOUT", "redis_from_url"]

#: Seconds allowed for connecting, for each reply and for a free pooled connection.
DEFAULT_TIMEOUT = 2.0
#: Connections per client. Callers beyond this wait for a free connection, up
#: to ``pool_timeout``, instead of opening more. Connections open only when
#: needed. With 256 concurrent requests on one uvicorn process, a pool of 256
#: had a p99 of 77 ms on one 2-core VM and 139 ms on another, and a pool of 64
#: had 1.7 s in an earlier run (docs/performance-notes.md).
# NOTE: an asyncio client's connect and read timeouts also count the time that
# its event loop spends on other tasks. At start and after an outage, every
# concurrent request opens a new connection, so a timeout far below the 2 s
# default can expire in the client itself (docs/reliability.md).
DEFAULT_MAX_CONNECTIONS = 256
#: Seconds a pooled connection may sit unused before it is checked with PING.
DEFAULT_HEALTH_CHECK_INTERVAL = 30


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Validated settings that every URL scheme's builder receives."""

    timeout: float
    max_connections: int
    pool_timeout: float
    health_check_interval: int
    options: dict[str, Any] = field(default_factory=dict)

    def pool_arguments(self, retry: Retry | AsyncRetry) -> dict[str, Any]:
        """Build the keyword arguments of a redis-py connection pool."""
        return {
            "retry": retry,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "health_check_interval": self.health_check_interval,
            "retry_on_error": [],
            "max_connections": self.max_connections,
            "timeout": self.pool_timeout,
            **self.options,
        }


#: A builder turns a URL and settings into a sync (False) or asyncio (True) client.
Builder = Callable[[str, ClientSettings, bool], Any]


def _build_standalone(url: str, settings: ClientSettings, use_asyncio: bool) -> Any:
    try:
        if use_asyncio:
            arguments = settings.pool_arguments(AsyncRetry(NoBackoff(), 0))
            async_pool = redis.asyncio.BlockingConnectionPool.from_url(url, **arguments)
            return redis.asyncio.Redis.from_pool(async_pool)
        arguments = settings.pool_arguments(Retry(NoBackoff(), 0))
        pool = redis.BlockingConnectionPool.from_url(url, **arguments)
    except ValueError as error:
        # redis-py's messages quote the part it could not read, which contains a
        # piece of the password when the password has an unencoded '/' or '@'.
        raise ConfigurationError(
            "invalid Redis URL; check the host and port, and percent-encode "
            "any '/', '@' or ':' in the password"
        ) from error
    return redis.Redis.from_pool(pool)


def _build_topology(url: str, settings: ClientSettings, use_asyncio: bool) -> Any:
    # Cluster and Sentinel clients manage one pool per node, so only the
    # timeout applies to them.
    return topology_from_url(url, timeout=settings.timeout, asyncio=use_asyncio)


# Each scheme maps to the builder of its client.
_BUILDERS: dict[str, Builder] = {
    "redis": _build_standalone,
    "rediss": _build_standalone,
    "unix": _build_standalone,
    "redis+cluster": _build_topology,
    "redis+sentinel": _build_topology,
}


@overload
def redis_from_url(
    url: str,
    *,
    timeout: float = ...,
    asyncio: Literal[False] = ...,
    max_connections: int = ...,
    pool_timeout: float | None = ...,
    health_check_interval: int = ...,
    **options: Any,
) -> redis.Redis: ...


@overload
def redis_from_url(
    url: str,
    *,
    timeout: float = ...,
    asyncio: Literal[True],
    max_connections: int = ...,
    pool_timeout: float | None = ...,
    health_check_interval: int = ...,
    **options: Any,
) -> redis.asyncio.Redis: ...


@overload
def redis_from_url(
    url: str,
    *,
    timeout: float = ...,
    asyncio: bool,
    max_connections: int = ...,
    pool_timeout: float | None = ...,
    health_check_interval: int = ...,
    **options: Any,
) -> redis.Redis | redis.asyncio.Redis: ...


def redis_from_url(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    asyncio: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float | None = None,
    health_check_interval: int = DEFAULT_HEALTH_CHECK_INTERVAL,
    **options: Any,
) -> redis.Redis | redis.asyncio.Redis:
    """Build a Redis client for a session store from a URL.

    Schemes: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (the
    same over TLS) and ``unix://[[user]:password@]/path/to/socket[?db=N]``
    build a ``redis.Redis``. ``redis+cluster://host:port[,host:port...]``
    builds a Redis Cluster client and
    ``redis+sentinel://host:port[,host:port...]/service_name[/db]`` a client of
    the primary that the sentinels name; for those two only ``timeout`` and
    ``asyncio`` apply (see :mod:`bearer_mw.topologies`).

    - ``timeout``: seconds for connecting and for each reply.
    - ``asyncio``: build a ``redis.asyncio.Redis`` for
      :class:`~bearer_mw.AsyncSessionStore` instead of a ``redis.Redis``.
    - ``max_connections``: size of the client's pool. A caller that finds every
      connection busy waits for one, up to ``pool_timeout`` seconds (default:
      ``timeout``), and then fails with ``redis.ConnectionError``.
    - ``health_check_interval``: seconds of disuse after which a connection
      is checked with PING before it is used; 0 turns the check off.
    - ``options``: further keyword arguments of redis-py's connection pool,
      such as ``ssl_ca_certs`` or ``client_name``. They override the settings
      above, and options in the URL's query string override both.

    Raises :class:`~bearer_mw.ConfigurationError` for an unsupported scheme or
    an invalid setting. Messages never quote the URL, which may hold a password.
    """
    scheme = urlsplit(url).scheme.lower()
    builder = _BUILDERS.get(scheme)
    if builder is None:
        supported = ", ".join(f"{name}://" for name in sorted(_BUILDERS))
        shown = f"{scheme}://" if scheme else "no scheme"
        raise ConfigurationError(
            f"unsupported Redis URL scheme {shown!r}; use one of {supported}"
        )

    settings = ClientSettings(
        timeout=_positive_seconds(timeout, "timeout"),
        max_connections=_positive_count(max_connections, "max_connections"),
        pool_timeout=_positive_seconds(
            timeout if pool_timeout is None else pool_timeout, "pool_timeout"
        ),
        health_check_interval=_health_check_interval(health_check_interval),
        options=dict(options),
    )
    client: redis.Redis | redis.asyncio.Redis = builder(url, settings, asyncio)
    return client


def _positive_seconds(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"{name} must be a number of seconds, got {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"{name} must be a positive, finite number of seconds, got {value!r}"
        )
    return float(value)


def _positive_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{name} must be an integer of at least 1, got {value!r}"
        )
    return value


def _health_check_interval(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"health_check_interval must be whole seconds, 0 or more, got {value!r}"
        )
    return value
