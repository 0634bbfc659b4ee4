"""How a notifier words and sorts a send that did not go through: the network's
words (the same as the checks'), HTTP statuses into retry or give up, `Retry-After`,
and redirects refused (a webhook URL that moved is a config to fix, not a hop).
"""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import aiohttp

from probe.contract.plugin import DeliveryError
from probe.core.networds import address, is_timeout, network_words
from probe.core.redact import MASK, Redactor, redact_url
from probe.core.units import format_duration, timed_out_after


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def http_error(status: int, retry_after: str | None, now: float) -> DeliveryError:
    """Sort an HTTP error status into retry (429, 5xx) or give up (other 4xx)."""
    if status == 429:
        wait = parse_retry_after(retry_after, now)
        hint = f", retry after {format_duration(wait)}" if wait is not None else ""
        return DeliveryError(f"rate limited (HTTP 429{hint})", True, wait)
    if status >= 500:
        return DeliveryError(f"HTTP {status}", True)
    return DeliveryError(f"HTTP {status}", False)


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


_LOCATION_SHOWN = 200  # characters of a Location header kept in the words


_PLAIN_SEGMENT = re.compile(r"[a-z][a-z0-9._-]{0,11}")  # `api`, `v2`, `alerts`, `hooks`


class RedirectRefused(aiohttp.ClientError):
    """A receiver answered with a redirect. Notifiers never follow one: a 301/302/303 would
    re-send a body-less GET that any server answers 200 (an alert counted as delivered but
    never posted), and a 307/308 would post the alert and its secret headers to another host.
    """

    def __init__(self, status: int, location: str, requested: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.location = location
        self.requested = requested

    def words(self) -> str:
        """`HTTP 302 to https://...: notifiers do not follow redirects; use the final URL`."""
        where = self._where()
        return f"HTTP {self.status}{where}: notifiers do not follow redirects; use the final URL"

    def _where(self) -> str:
        location = "".join(c if c.isprintable() else "?" for c in self.location.strip())
        if not location:
            return " without a Location"
        try:
            target = urlsplit(urljoin(self.requested, location[:_LOCATION_SHOWN]))
            asked = urlsplit(self.requested)
            port = target.port
        except ValueError:
            return " to an invalid Location"
        if target.geturl() == asked.geturl():
            return " to the same URL (a redirect loop)"
        origin = f"{target.scheme}://{target.hostname or ''}" + (f":{port}" if port else "")
        # A hook URL is often its own credential (a token in its path): the parts of the
        # path it shares with the URL asked for are shown only when they are plain words.
        shared = set(asked.path.split("/"))
        path = "/".join(
            seg if not seg or seg not in shared or _PLAIN_SEGMENT.fullmatch(seg) else MASK
            for seg in target.path.split("/")
        )
        query = f"?{target.query}" if target.query else ""
        return f" to {redact_url(origin + path + query)}"


def connection_error(
    exc: BaseException, timeout: float, connect_limit: float, redact: Redactor, where: str = ""
) -> DeliveryError:
    """A send that raised, as DeliveryError words that start with `where` (already safe to
    print) and hold no secret. A refused redirect is final: the next attempt meets it too."""
    words = connection_words(exc, timeout, connect_limit)
    detail = redact(f"{where}: {words}" if where else words)
    return DeliveryError(detail, retryable=not isinstance(exc, RedirectRefused))


def connect_timeout(session: aiohttp.ClientSession, timeout: float) -> float:
    """How long connecting may take: the session's connect limit, within the notifier's."""
    limit = session.timeout.sock_connect or session.timeout.connect
    return min(timeout, limit) if limit else timeout


def connection_words(exc: BaseException, timeout: float, connect_limit: float) -> str:
    """`connection refused (127.0.0.1:9)`, in the same words the checks use.

    aiohttp's own timeouts are ClientErrors as well as TimeoutErrors: a receiver that
    accepts and never answers must read `timed out after 10s`, not `connection failed`.
    """
    if isinstance(exc, RedirectRefused):
        return exc.words()
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        where = address(exc.host, exc.port)
        return network_words(exc, exc.host, where) or f"cannot connect ({where})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"timed out connecting after {format_duration(connect_limit)}"
    if is_timeout(exc):
        return timed_out_after(timeout)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by server"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "connection closed by server (answer cut short)"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    return network_words(exc, "", "") or "connection failed"
