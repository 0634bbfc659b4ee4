"""The Redis client both Redis-backed checks (`redis`, `bullmq`) use, and its failure words."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from probe.checks.shared import SharedClients
from probe.core.networds import address, first_line, network_words, url_port
from probe.core.redact import redact_url

DEFAULT_PORT = 6379
SCHEMES = ("redis", "rediss", "unix")
# Everything a Redis call can raise that means "this run failed", besides TimeoutError.
DRIVER_ERRORS = (rx.RedisError, OSError)


def checked_url(url: str) -> str:
    """The config's Redis URL, or ValueError with words: redis-py reads the port only when
    it connects, so `redis://h:abc/0` would otherwise crash every run."""
    if urlsplit(url).scheme not in SCHEMES:
        example = "redis://:password@host:6379/0"
        raise ValueError(f"expected a URL like {example}, got {redact_url(url)!r}")
    url_port(url)
    return url


def connect(
    url: str, timeout: float, socket_timeout: float | None, max_connections: int = 2
) -> aioredis.Redis:
    """A small client with explicit deadlines.

    redis-py's defaults would wait well past a check's deadline on a silent server, so
    connecting is bounded by the check's timeout and a timeout is never retried. One
    immediate retry on a connection error lets a pooled socket that Redis closed while
    idle (restart, `timeout` setting) reconnect instead of failing a run while Redis is
    fine; the run's own deadline still bounds it.
    """
    # A blocking pool: checks sharing one client may overlap, and the default pool raises
    # instead of waiting once `max_connections` are out (the run's deadline bounds the wait).
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(rx.ConnectionError,)),
        retry_on_timeout=False,
        max_connections=max_connections,
        # No client name: CLIENT SETNAME is refused to ACL users of managed Redis, and
        # that would fail every run.
        decode_responses=True,
        # The one decoding rule for bytes from Redis: a value that is not UTF-8 (a BullMQ
        # failedReason from a native library, a client name) reads with U+FFFD in place of
        # the bad bytes. Strict decoding failed the whole reply, so a bad stream entry
        # failed every run until BullMQ trimmed it away, days later on a quiet queue.
        encoding_errors="replace",
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool


def host_and_address(url: str) -> tuple[str, str]:
    """(host, host:port) for error words; a unix socket is its path."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path, parts.path
    host = parts.hostname or "localhost"
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        port = DEFAULT_PORT
    return host, address(host, port)


def words(exc: BaseException, url: str) -> str | None:
    host, where = host_and_address(url)
    message = str(exc)
    if "NOAUTH" in message or "must be called with the client already authenticated" in message:
        return f"authentication required ({where}): put the password in the URL"
    if isinstance(exc, rx.InvalidResponse):
        return f"not a Redis server ({where}): it answered in another protocol"
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError):
        return f"authentication failed ({where}): {first_line(exc)}"
    if isinstance(exc, rx.BusyLoadingError):
        return f"Redis is loading its data set ({where})"
    if isinstance(exc, rx.ResponseError):
        return f"Redis refused the command ({where}): {first_line(exc)}"
    found = network_words(exc, host, where)
    if found:
        return found
    if isinstance(exc, rx.ConnectionError):
        return f"connection closed by server ({where})"
    return None


def server_of(url: str) -> str:
    """Which Redis server a URL names, whatever its db, user or password: `host:port`
    (lower case, default port filled in) or a unix socket's path."""
    return host_and_address(url)[1].lower()


# One client per URL and timeout for the `redis` checks (see shared.py): the URL holds
# everything the client reads (TLS, credentials, db), and the counters and restart watch
# stay with each check. Its pool opens a second connection only while runs overlap.
ClientKey = tuple[str, float]  # (url, timeout)
SHARED_CONNECTIONS = 4


def _shared_client(key: ClientKey) -> aioredis.Redis:
    url, timeout = key
    return connect(url, timeout, socket_timeout=timeout, max_connections=SHARED_CONNECTIONS)


async def _close(client: aioredis.Redis) -> None:
    await client.aclose()


CLIENTS: SharedClients[ClientKey, aioredis.Redis] = SharedClients(_shared_client, _close)
