"""One queue and one task per notifier: retries with backoff, at-least-once, never blocking.

A notification leaves its queue only when the notifier accepted it, when the receiver
rejected it for good (4xx other than 429), or when it is older than `max_delivery_age`.
Until then it stays queued, so a stop before delivery leaves it in the state file.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp

from probe.alerts.notification import NOTIFICATION_RESULTS, Notification
from probe.networds import address, is_timeout, network_words
from probe.redact import MASK, Redactor, redact_url
from probe.tasks import cancel_and_wait
from probe.times import Clock
from probe.units import format_duration, timed_out_after

log = logging.getLogger("probe.alerts.delivery")

RETRY_AFTER_CAP = 60.0  # a receiver asking for more is asking too much of an alert


class DeliveryError(Exception):
    """A send that did not go through, in words a user can act on (no secrets)."""

    def __init__(self, detail: str, retryable: bool = True, retry_after: float | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(Protocol):
    """What delivery needs from Slack, Alertmanager and any notifier to come."""

    @property
    def kind(self) -> str:
        """The `notifier` label of probe_notifications_total: `slack`, `alertmanager`."""
        ...

    @property
    def description(self) -> str:
        """Where it sends to, safe to print: `slack webhook hooks.slack.com`."""
        ...

    @property
    def timeout(self) -> float: ...

    async def send(self, notification: Notification) -> None:
        """Deliver or raise DeliveryError."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: delay n is uniform in [initial*factor^n / 2, ...]."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**attempt)
        return random.uniform(ceiling / 2, ceiling)


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


class Delivery:
    """Sends queued notifications through one notifier, oldest first."""

    def __init__(
        self,
        notifier: Notifier,
        ident: str,
        max_age: float,
        clock: Clock = time.time,
        backoff: Backoff | None = None,
        retry_after_cap: float = RETRY_AFTER_CAP,
        on_finish: Callable[[], None] | None = None,
    ) -> None:
        self.notifier = notifier
        self.ident = ident  # stable across restarts while the config keeps its order
        self.max_age = max_age
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.retry_after_cap = retry_after_cap
        self.on_finish = on_finish  # called when a notification leaves the queue
        self.queue: deque[Notification] = deque()
        self.counts = dict.fromkeys(NOTIFICATION_RESULTS, 0)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retry_at: float | None = None  # monotonic time the next attempt is due

    def put(self, notification: Notification) -> None:
        self.queue.append(notification)
        self._wakeup.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"delivery {self.ident}")

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` for the queue to empty; True when it did.

        Gives up at once when the next attempt waits out a backoff or Retry-After that
        ends after the deadline: a SIGTERM must not sit out a rate limit for nothing.
        """
        deadline = time.monotonic() + timeout
        while self.queue and self._task is not None and not self._task.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self._retry_at is not None and self._retry_at >= deadline):
                return False
            await asyncio.sleep(min(0.02, remaining))
        return not self.queue

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            if not self.queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._deliver(self.queue[0])

    async def _deliver(self, notification: Notification) -> None:
        attempt = 0
        said = ""  # the failure last logged for this notification
        while True:
            age = self.clock() - notification.created
            if age > self.max_age:
                self._finish(notification, "dropped", f"older than {format_duration(self.max_age)}")
                return
            error = await self._attempt(notification)
            if error is None:
                self._finish(notification, "sent", "", attempt + 1)
                return
            if not error.retryable:
                self._finish(notification, "dropped", error.detail, attempt + 1)
                return
            self.counts["failed"] += 1
            delay = self._delay(error, attempt)
            if error.detail != said:
                self._log_retry(error, delay, attempt)
                said = error.detail
            attempt += 1
            self._retry_at = time.monotonic() + delay
            try:
                await asyncio.sleep(delay)
            finally:
                self._retry_at = None

    async def _attempt(self, notification: Notification) -> DeliveryError | None:
        try:
            async with asyncio.timeout(self.notifier.timeout):
                await self.notifier.send(notification)
        except TimeoutError:
            return DeliveryError(timed_out_after(self.notifier.timeout))
        except DeliveryError as exc:
            return exc
        except Exception:  # a client library surprise must not kill this queue's task
            log.exception(
                "unexpected error sending to %s",
                self.notifier.description,
                extra={"notifier": self.ident},
            )
            return DeliveryError("unexpected error (see the log)")
        return None

    def _log_retry(self, error: DeliveryError, delay: float, attempt: int) -> None:
        """Said once per notification and failure: a receiver answering 429 for an hour
        is one line, not one per attempt. The outcome is logged when there is one."""
        log.warning(
            "notification to %s failed: %s; retrying in %s (repeats of this failure are "
            "not logged)",
            self.notifier.description,
            error.detail,
            format_duration(delay),
            extra={"notifier": self.ident, "attempt": attempt + 1, "detail": error.detail},
        )

    def _delay(self, error: DeliveryError, attempt: int) -> float:
        backoff = self.backoff.delay(attempt)
        if error.retry_after is None:
            return backoff
        # The receiver's wait, but never less than our own backoff: `Retry-After: 0`, or a
        # date already past (a proxy whose clock is behind), made a loop of ~2,000 req/s.
        return max(min(error.retry_after, self.retry_after_cap), backoff)

    def _finish(
        self, notification: Notification, result: str, detail: str, attempts: int = 0
    ) -> None:
        if self.queue and self.queue[0] is notification:
            self.queue.popleft()
        self.counts[result] += 1
        extra = {"notifier": self.ident, "alerts": len(notification.alerts), "result": result}
        after = f" after {attempts} attempts" if attempts > 1 else ""
        if result == "sent":
            log.info("notification sent to %s%s", self.notifier.description, after, extra=extra)
        else:
            log.error(
                "notification to %s dropped%s: %s",
                self.notifier.description,
                after,
                detail,
                extra={**extra, "detail": detail},
            )
        if self.on_finish is not None:
            self.on_finish()
