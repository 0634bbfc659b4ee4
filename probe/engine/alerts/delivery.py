"""One queue and one task per notifier: retries with backoff, at-least-once, never blocking.

A notification leaves its queue only when the notifier accepted it, when the receiver
rejected it for good (4xx other than 429), or when it is older than `max_delivery_age`.
Until then it stays queued, so a stop before delivery leaves it in the state file.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from probe.contract.notification import NOTIFICATION_RESULTS, Notification
from probe.contract.plugin import DeliveryError
from probe.core.tasks import cancel_and_wait
from probe.core.times import Clock
from probe.core.units import format_duration, timed_out_after

log = logging.getLogger("probe.alerts.delivery")

RETRY_AFTER_CAP = 60.0  # a receiver asking for more is asking too much of an alert


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
