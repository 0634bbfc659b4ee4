"""Wiring: results -> engine -> grouping -> one delivery queue per notifier, plus the state file.

Reload: the agent stops the old service and builds the new one with `previous=old`; the
new one starts from `old.export_state()` (firing keys, undelivered notifications and
counters), so no state file is needed for a reload. Without `previous` it starts from
`agent.state_file` when set. Notifier queues are matched by position and type
(`slack[0]`), so a reload that keeps the notifier list keeps their queues.

A state file that cannot be written (read-only volume, missing mount) is logged once per
distinct error and retried on the next change of alert state or every
`STATE_RETRY_INTERVAL`, never on every tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp

from probe.alerts.alertmanager import AlertmanagerNotifier
from probe.alerts.delivery import RETRY_AFTER_CAP, Backoff, Delivery, DeliveryError, Notifier
from probe.alerts.engine import AlertEngine, Grouper
from probe.alerts.notification import Alert, Kind, Notification, alert_test_notification
from probe.alerts.slack import SlackNotifier
from probe.alerts.state import SavedState, load_state, save_state
from probe.config import (
    AlertmanagerNotifierConfig,
    Config,
    NotifierConfig,
    SlackNotifierConfig,
)
from probe.model import CheckResult
from probe.redact import Redactor
from probe.times import Clock
from probe.units import format_duration

log = logging.getLogger("probe.alerts")

RESULTS = ("sent", "failed", "dropped")
STATE_RETRY_INTERVAL = 30.0  # while the state file cannot be written


def _parents(config: Config) -> dict[str, str]:
    """member -> top-level group, so overrides and silences on a group cover its members."""
    parents: dict[str, str] = {}
    for top in config.checks:
        stack = list(top.members())
        while stack:
            member = stack.pop()
            parents[member.name] = top.name
            stack.extend(member.members())
    return parents


def _session(config: Config) -> aiohttp.ClientSession:
    timeouts = [n.timeout for n in config.alerts.notifiers] or [10.0]
    # slack-sdk ignores its own timeout when given a session; the session's is the one applied.
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=max(timeouts), sock_connect=min(5.0, max(timeouts)))
    )


def build_notifier(
    config: NotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
) -> Notifier:
    if isinstance(config, SlackNotifierConfig):
        return SlackNotifier(config, session, redactor)
    return AlertmanagerNotifier(config, session, redactor)


def _usable(index: int, config: NotifierConfig) -> bool:
    if not config.enabled:
        return False
    if not config.configured:
        log.warning(
            "slack notifier %d skipped: webhook_url and token are empty "
            "(set SLACK_WEBHOOK_URL to enable it)",
            index,
            extra={"notifier": f"{config.type}[{index}]"},
        )
        return False
    return True


class AlertService:
    def __init__(
        self,
        config: Config,
        clock: Clock = time.time,
        *,
        previous: AlertService | None = None,
        backoff: Backoff | None = None,
        retry_after_cap: float = RETRY_AFTER_CAP,
        tick_interval: float | None = None,
        state_retry_interval: float = STATE_RETRY_INTERVAL,
    ) -> None:
        self.config = config
        self.clock = clock
        self.agent = config.agent.name
        self.engine = AlertEngine(config.alerts, _parents(config))
        self.grouper = Grouper(config.alerts.group_wait)
        self.redactor = Redactor(config.secrets())
        self.backoff = backoff
        self.retry_after_cap = retry_after_cap
        self.tick_interval = tick_interval or min(1.0, max(0.05, config.alerts.group_wait / 5))
        self._previous = previous
        self._deliveries: list[Delivery] = []
        self._carried_counts: dict[tuple[str, str], int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._saved_version = -1
        self._save_scheduled = False
        self._state_retry_interval = state_retry_interval
        self._attempted_version = -1
        self._save_error: str | None = None  # why the last write failed, as logged
        self._save_retry_at = 0.0  # monotonic; only consulted while writes fail
        self._started = self._stopped = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        state = self._initial_state()
        self._restore(state)
        self._session = _session(self.config)
        for index, notifier_config in enumerate(self.config.alerts.notifiers):
            if _usable(index, notifier_config):
                self._add_delivery(index, notifier_config, self._session, state)
        unclaimed = {k: v for k, v in state.outbox.items() if k not in self._idents()}
        for ident, queue in unclaimed.items():
            log.warning(
                "dropping %d undelivered notifications for notifier %s, no longer configured",
                len(queue),
                ident,
                extra={"notifier": ident},
            )
        known = [c.name for c in self.config.all_checks()]
        now = self.clock()
        self._queue(self.engine.forget_unknown(known, now), now)
        for delivery in self._deliveries:
            delivery.start()
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="alerts tick"))
        for delivery in self._deliveries:
            if isinstance(delivery.notifier, AlertmanagerNotifier):
                task = asyncio.create_task(self._resend_loop(delivery.notifier), name="am resend")
                self._tasks.append(task)
        self._save()

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Bounded flush: undelivered notifications stay in the exported/saved state."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if not self._started:
            return
        self._flush(self.grouper.drain())
        await asyncio.gather(*(d.drain(flush_timeout) for d in self._deliveries))
        for delivery in self._deliveries:
            await delivery.stop()
            if delivery.queue:
                fate = (
                    "kept for the next start"
                    if self.config.agent.state_file
                    else "lost: set agent.state_file to keep them across restarts"
                )
                log.warning(
                    "%d notifications for %s not delivered before stop; %s",
                    len(delivery.queue),
                    delivery.notifier.description,
                    fate,
                    extra={"notifier": delivery.ident, "pending": len(delivery.queue)},
                )
        self._save()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------ input

    def observe(self, check: str, result: CheckResult) -> None:
        """Called by the store for every new top-level result; never raises, never waits.

        Results before `start()` or after `stop()` are ignored: the state is not loaded
        yet, or already handed on to the next service.
        """
        if not self._started or self._stopped:
            return
        try:
            now = self.clock()
            due = self.engine.observe(check, result, now)
            self._queue(due, now)
        except Exception:  # a bug here must not stop results from being recorded
            log.exception("alert evaluation failed", extra={"check": check})

    # ------------------------------------------------------------ readers

    def firing(self) -> dict[str, int]:
        return self.engine.firing_counts()

    def notification_counts(self) -> dict[tuple[str, str], int]:
        counts = dict(self._carried_counts)
        for delivery in self._deliveries:
            for result in RESULTS:
                key = (delivery.notifier.kind, result)
                counts[key] = counts.get(key, 0) + delivery.counts[result]
        return counts

    def export_state(self) -> SavedState:
        outbox = {d.ident: list(d.queue) for d in self._deliveries}
        pending = self.grouper.drain()
        if pending:
            notification = Notification(self.agent, self.clock(), tuple(pending))
            for queue in outbox.values():
                queue.append(notification)
        return SavedState(alerts=self.engine.export(), outbox=outbox, saved_at=self.clock())

    # ------------------------------------------------------------ internals

    def _initial_state(self) -> SavedState:
        if self._previous is not None:
            self._carried_counts = self._previous.notification_counts()
            return self._previous.export_state()
        path = self.config.agent.state_file
        loaded = load_state(path) if path else None
        return loaded or SavedState()

    def _restore(self, state: SavedState) -> None:
        try:
            self.engine.restore(state.alerts)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unusable saved alert states: %s", exc)
            self.engine.states.clear()
        if self.engine.states:
            log.info(
                "restored %d alert states",
                len(self.engine.states),
                extra={"alerts": len(self.engine.states)},
            )

    def _add_delivery(
        self,
        index: int,
        config: SlackNotifierConfig | AlertmanagerNotifierConfig,
        session: aiohttp.ClientSession,
        state: SavedState,
    ) -> None:
        notifier = build_notifier(config, session, self.redactor)
        delivery = Delivery(
            notifier,
            ident=f"{config.type}[{index}]",
            max_age=self.config.alerts.max_delivery_age,
            clock=self.clock,
            backoff=self.backoff,
            retry_after_cap=self.retry_after_cap,
            on_finish=self._outbox_changed,
        )
        delivery.queue.extend(state.outbox.get(delivery.ident, []))
        self._deliveries.append(delivery)

    def _idents(self) -> set[str]:
        return {d.ident for d in self._deliveries}

    def _queue(self, due: list[Alert], now: float) -> None:
        for alert in due:
            _log_alert(alert)
        self.grouper.add(due, now)
        self._flush(self.grouper.due(now))
        self._save_soon()

    def _flush(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        notification = Notification(self.agent, self.clock(), tuple(alerts))
        for delivery in self._deliveries:
            delivery.put(notification)
        self._save_soon(force=True)

    def _outbox_changed(self) -> None:
        self._save_soon(force=True)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                now = self.clock()
                self._queue(self.engine.tick(now), now)
            except Exception:  # keep ticking: reminders must not die with one bad state
                log.exception("alert tick failed")

    async def _resend_loop(self, notifier: AlertmanagerNotifier) -> None:
        while True:
            await asyncio.sleep(notifier.config.resend)
            try:
                now = self.clock()
                await notifier.resend(self.engine.active(now), self.agent, now)
            except Exception:  # keep re-sending: firing alerts expire in Alertmanager otherwise
                log.exception("re-sending firing alerts to %s failed", notifier.description)

    def _save_soon(self, force: bool = False) -> None:
        """Coalesce the writes of one loop iteration (a group result moves many keys)."""
        if not self.config.agent.state_file or self._save_scheduled:
            return
        if not force and (self.engine.version == self._saved_version or self._save_waits()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._save()
            return
        self._save_scheduled = True
        loop.call_soon(self._scheduled_save)

    def _save_waits(self) -> bool:
        """While writes fail, the ticks do not retry: a new transition or the interval does."""
        if self._save_error is None or self.engine.version != self._attempted_version:
            return False
        return time.monotonic() < self._save_retry_at

    def _scheduled_save(self) -> None:
        # After stop() the file belongs to the next service; stop() wrote the final state.
        if not self._stopped:
            self._save()

    def _save(self) -> None:
        self._save_scheduled = False
        path = self.config.agent.state_file
        if not path:
            return
        state = SavedState(
            alerts=self.engine.export(),
            outbox={d.ident: list(d.queue) for d in self._deliveries},
            saved_at=self.clock(),
        )
        if self.grouper:
            # Not yet handed to a queue: persist as if it had been, so a crash keeps it.
            pending = Notification(self.agent, self.clock(), tuple(self.grouper.peek()))
            for queue in state.outbox.values():
                queue.append(pending)
        self._attempted_version = self.engine.version
        error = save_state(path, state)
        if error is None:
            self._saved_version = self._attempted_version
            if self._save_error is not None:
                log.info("alert state file %s written again", path, extra={"path": path})
                self._save_error = None
            return
        self._save_retry_at = time.monotonic() + self._state_retry_interval
        if error != self._save_error:
            log.error(
                "cannot write alert state file %s: %s; alert state will not survive a restart "
                "until it can be written (retrying on each alert change and every %s)",
                path,
                error,
                format_duration(self._state_retry_interval),
                extra={"path": path},
            )
        self._save_error = error


def _log_alert(alert: Alert) -> None:
    level = logging.INFO if alert.kind is Kind.RESOLVED else logging.WARNING
    log.log(
        level,
        "alert %s %s: %s",
        alert.kind.value,
        alert.key,
        alert.summary,
        extra={
            "alert": alert.key,
            "check": alert.check,
            "component": alert.component,
            "severity": alert.severity.value,
            "kind": alert.kind.value,
        },
    )


async def send_test(config: Config) -> list[tuple[str, bool, str]]:
    """`probe alert-test`: one attempt per enabled notifier -> (description, delivered, detail)."""
    redactor = Redactor(config.secrets())
    reports: list[tuple[str, bool, str]] = []
    async with _session(config) as session:
        for index, notifier_config in enumerate(config.alerts.notifiers):
            if not notifier_config.enabled:
                continue
            if not notifier_config.configured:
                reports.append((f"slack[{index}]", False, "not configured: webhook_url is empty"))
                continue
            notifier = build_notifier(notifier_config, session, redactor)
            reports.append(await _try_send(notifier, config.agent.name, redactor))
    return reports


# `probe alert-test` is run by a person waiting at a terminal: one retry, soon, and none
# after an attempt that already sat out most of its timeout.
TEST_RETRY_WAIT_CAP = 10.0


async def _try_send(notifier: Notifier, agent: str, redactor: Redactor) -> tuple[str, bool, str]:
    notification = alert_test_notification(agent, time.time())
    detail = ""
    for attempt in range(2):
        started = time.monotonic()
        detail, retry_in = await _attempt(notifier, notification, redactor)
        if not detail:
            return notifier.description, True, ""
        slow = time.monotonic() - started >= notifier.timeout / 2
        if attempt or retry_in is None or slow:
            break
        await asyncio.sleep(retry_in)
    return notifier.description, False, detail


async def _attempt(
    notifier: Notifier, notification: Notification, redactor: Redactor
) -> tuple[str, float | None]:
    """'' when delivered, else why not and, when worth retrying, how soon."""
    try:
        async with asyncio.timeout(notifier.timeout):
            await notifier.send(notification)
    except DeliveryError as exc:
        retry_in = min(exc.retry_after or 1.0, TEST_RETRY_WAIT_CAP) if exc.retryable else None
        return exc.detail, retry_in
    except TimeoutError:
        return f"timed out after {format_duration(notifier.timeout)}", None
    except Exception as exc:  # a bug or a library surprise is this notifier's FAILED line
        log.debug("unexpected error sending to %s", notifier.description, exc_info=True)
        return redactor(f"unexpected error: {exc}" if str(exc) else "unexpected error"), None
    return "", None
