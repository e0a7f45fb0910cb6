"""Clients for Redis Cluster and Redis Sentinel deployments, built from URLs.

Two URL forms, each with optional credentials for the data nodes::

    redis+cluster://[user:password@]host:port[,host:port...]
    redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]

A cluster URL lists startup nodes, and the client learns the other nodes from
them. A Sentinel URL lists sentinels, and the client asks them for the current
primary of ``service_name``. Hosts may be IPv6 literals in brackets. Ports
default to 6379 for cluster nodes and 26379 for sentinels. Credentials are
percent-decoded and go to the data nodes only, never to sentinels. Query
strings are rejected, so no option is ignored silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, overload
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from .errors import ConfigurationError, StoreUnavailableError

__all__ = [
    "CLUSTER_SCHEME",
    "SENTINEL_SCHEME",
    "TOPOLOGY_SCHEMES",
    "ClusterURL",
    "SentinelURL",
    "aclose_client",
    "close_client",
    "cluster_from_url",
    "parse_cluster_url",
    "parse_sentinel_url",
    "sentinel_from_url",
    "topology_from_url",
]

CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"
#: URL schemes that :func:`topology_from_url` accepts.
TOPOLOGY_SCHEMES = frozenset({CLUSTER_SCHEME, SENTINEL_SCHEME})

DEFAULT_CLUSTER_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """The parts of a ``redis+cluster://`` URL."""

    nodes: tuple[Address, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """The parts of a ``redis+sentinel://`` URL."""

    sentinels: tuple[Address, ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_cluster_url(url: str) -> ClusterURL:
    """Split a ``redis+cluster://`` URL into startup nodes and credentials."""
    parts = _split(url, CLUSTER_SCHEME)
    username, password, hosts = _split_netloc(parts.netloc)
    if parts.path not in ("", "/", "/0"):
        raise ConfigurationError(
            f"a {CLUSTER_SCHEME} URL has no path, because Redis Cluster serves "
            "database 0 only; remove the path (percent-encode a '/' in a password)"
        )
    return ClusterURL(_parse_addresses(hosts, DEFAULT_CLUSTER_PORT), username, password)


def parse_sentinel_url(url: str) -> SentinelURL:
    """Split a ``redis+sentinel://`` URL into sentinels, service and database."""
    parts = _split(url, SENTINEL_SCHEME)
    username, password, hosts = _split_netloc(parts.netloc)
    segments = parts.path.strip("/").split("/")
    if not segments[0] or len(segments) > 2:
        raise ConfigurationError(
            f"a {SENTINEL_SCHEME} URL needs the path /service_name or "
            "/service_name/db (percent-encode a '/' in a password)"
        )
    service_name = unquote(segments[0])
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ConfigurationError(
                f"the database in a {SENTINEL_SCHEME} URL must be a "
                "non-negative integer"
            )
        db = int(segments[1])
    return SentinelURL(
        _parse_addresses(hosts, DEFAULT_SENTINEL_PORT),
        service_name,
        db,
        username,
        password,
    )


@overload
def cluster_from_url(
    url: str, *, timeout: float, asyncio: Literal[False] = False
) -> redis.cluster.RedisCluster: ...
@overload
def cluster_from_url(
    url: str, *, timeout: float, asyncio: Literal[True]
) -> redis.asyncio.cluster.RedisCluster: ...
@overload
def cluster_from_url(
    url: str, *, timeout: float, asyncio: bool
) -> redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster: ...
def cluster_from_url(
    url: str, *, timeout: float, asyncio: bool = False
) -> redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster:
    """Build a Redis Cluster client from a ``redis+cluster://`` URL.

    ``timeout`` bounds, in seconds, each connect and each reply on every node.
    The sync client loads the slot map at once and raises
    :class:`~bearer_mw.StoreUnavailableError` when no startup node responds.
    The asyncio client connects on its first command.
    """
    parsed = parse_cluster_url(url)
    options = _connection_options(timeout, parsed.username, parsed.password)
    # redis-py retries cluster commands with backoff by default (10 times for
    # asyncio), which would stretch a hung node into many timeouts. The store
    # retries once itself, so the client makes a single attempt; MOVED and ASK
    # redirections are followed regardless.
    if asyncio:
        options["retry"] = redis.asyncio.retry.Retry(NoBackoff(), 0)
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[
                redis.asyncio.cluster.ClusterNode(host, port)
                for host, port in parsed.nodes
            ],
            **options,
        )
    options["retry"] = Retry(NoBackoff(), 0)
    try:
        return redis.cluster.RedisCluster(
            startup_nodes=[
                redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in parsed.nodes
            ],
            **options,
        )
    except (RedisError, RedisClusterException) as error:
        nodes = ",".join(_format_address(address) for address in parsed.nodes)
        raise StoreUnavailableError(
            f"no startup node of the Redis Cluster at {nodes} returned the slot "
            f"map ({type(error).__name__}); check the addresses and that the "
            "cluster is up",
            operation="connect",
        ) from error


@overload
def sentinel_from_url(
    url: str, *, timeout: float, asyncio: Literal[False] = False
) -> redis.Redis: ...
@overload
def sentinel_from_url(
    url: str, *, timeout: float, asyncio: Literal[True]
) -> redis.asyncio.Redis: ...
@overload
def sentinel_from_url(
    url: str, *, timeout: float, asyncio: bool
) -> redis.Redis | redis.asyncio.Redis: ...
def sentinel_from_url(
    url: str, *, timeout: float, asyncio: bool = False
) -> redis.Redis | redis.asyncio.Redis:
    """Build a client for the primary that sentinels name in a URL.

    The client asks the sentinels for the primary when it connects and again
    after it loses the connection, so it follows a failover. ``timeout``
    bounds, in seconds, each connect and each reply, on the sentinels and on
    the primary. Nothing connects before the first command. Close the client
    with :func:`close_client` or :func:`aclose_client`, which also close the
    connections to the sentinels.
    """
    parsed = parse_sentinel_url(url)
    sentinel_options = _connection_options(timeout, None, None)
    primary_options = _connection_options(timeout, parsed.username, parsed.password)
    if asyncio:
        async_sentinel = redis.asyncio.sentinel.Sentinel(
            list(parsed.sentinels), sentinel_kwargs=sentinel_options
        )
        async_client: redis.asyncio.Redis = async_sentinel.master_for(
            parsed.service_name, db=parsed.db, **primary_options
        )
        return async_client
    sentinel = redis.sentinel.Sentinel(
        list(parsed.sentinels), sentinel_kwargs=sentinel_options
    )
    client: redis.Redis = sentinel.master_for(
        parsed.service_name, db=parsed.db, **primary_options
    )
    return client


def topology_from_url(url: str, *, timeout: float, asyncio: bool = False) -> Any:
    """Build a cluster or Sentinel client, by the scheme of ``url``.

    Accepts the schemes in :data:`TOPOLOGY_SCHEMES` and raises
    :class:`~bearer_mw.ConfigurationError` for any other.
    """
    scheme = _urlsplit(url).scheme.lower()
    if scheme == CLUSTER_SCHEME:
        return cluster_from_url(url, timeout=timeout, asyncio=asyncio)
    if scheme == SENTINEL_SCHEME:
        return sentinel_from_url(url, timeout=timeout, asyncio=asyncio)
    raise ConfigurationError(
        f"URL scheme {scheme!r} is not {CLUSTER_SCHEME} or {SENTINEL_SCHEME}"
    )


def close_client(client: redis.Redis | redis.cluster.RedisCluster) -> None:
    """Close a sync client and, for a Sentinel-managed one, its sentinel clients."""
    client.close()
    pool = getattr(client, "connection_pool", None)
    sentinel = getattr(pool, "sentinel_manager", None)
    if isinstance(sentinel, redis.sentinel.Sentinel):
        sentinel.close()


async def aclose_client(
    client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
) -> None:
    """Close an asyncio client and, for a Sentinel-managed one, its sentinels."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    sentinel = getattr(pool, "sentinel_manager", None)
    if isinstance(sentinel, redis.asyncio.sentinel.Sentinel):
        await sentinel.aclose()


def _connection_options(
    timeout: float, username: str | None, password: str | None
) -> dict[str, Any]:
    if not timeout > 0:
        raise ConfigurationError(f"timeout must be positive seconds, got {timeout!r}")
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if username is not None:
        options["username"] = username
    if password is not None:
        options["password"] = password
    return options


def _split(url: str, scheme: str) -> Any:
    # Errors quote no part of the URL, because a password with an unencoded
    # '/' or '@' shifts its pieces into the host, port or path.
    parts = _urlsplit(url)
    if parts.scheme.lower() != scheme:
        raise ConfigurationError(
            f"expected a {scheme}:// URL, got scheme {parts.scheme!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"a {scheme} URL takes no query string or fragment; configure other "
            "options by building the client directly"
        )
    return parts


def _urlsplit(url: str) -> Any:
    try:
        return urlsplit(url)
    except ValueError as error:
        # urlsplit rejects unbalanced IPv6 brackets; its message quotes no URL.
        raise ConfigurationError(f"invalid Redis URL: {error}") from error


def _split_netloc(netloc: str) -> tuple[str | None, str | None, str]:
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return None, None, netloc
    username, colon, password = userinfo.partition(":")
    if not colon:
        # redis:// URLs read a lone userinfo field as the password.
        return None, unquote(username), hosts
    return unquote(username) or None, unquote(password), hosts


def _parse_addresses(hosts: str, default_port: int) -> tuple[Address, ...]:
    if not hosts:
        raise ConfigurationError("the URL names no host; list at least one host:port")
    return tuple(_parse_address(item, default_port) for item in hosts.split(","))


def _parse_address(item: str, default_port: int) -> Address:
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigurationError(
                "invalid IPv6 host in the URL; write [address]:port"
            )
        port_text = rest[1:]
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ConfigurationError("missing host in the URL; write host:port")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(
            "invalid port in the URL; use 1 to 65535, and percent-encode any "
            "'/', '@' or ':' in a password"
        )
    return host, int(port_text)


def _format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
