"""Wiring: results -> engine -> grouping -> one delivery queue per notifier, plus the state file.

Reload: the agent stops the old service and builds the new one with `previous=old`; the
new one starts from `old.export_state()` (firing keys, undelivered notifications and
counters), so no state file is needed for a reload. Without `previous` it starts from
`agent.state_file` when set. Notifier queues are matched by position and type
(`slack[0]`), so a reload that keeps the notifier list keeps their queues.

The state file is written by `StateWriter`, `probe alert-test` lives in `alert_test.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import aiohttp

from probe.contract.config import Config
from probe.contract.notification import NOTIFICATION_RESULTS, Alert, Kind, Notification
from probe.contract.plugin import NotifierConfig, Resender
from probe.contract.plugins import build_notifier
from probe.core.incident_notes import IncidentNotes, Note, new_note
from probe.core.maintenance import Maintenance, Window, new_window
from probe.core.model import CheckResult
from probe.core.redact import Redactor
from probe.core.tasks import cancel_and_wait
from probe.core.times import Clock
from probe.engine.alerts.delivery import RETRY_AFTER_CAP, Backoff, Delivery
from probe.engine.alerts.engine import AlertEngine, Grouper
from probe.engine.alerts.session import notifier_session
from probe.engine.alerts.state import SavedState, load_state_off_loop
from probe.engine.alerts.state_writer import STATE_RETRY_INTERVAL, StateWriter

if TYPE_CHECKING:
    from probe.engine.fleet.elector import Fleet

log = logging.getLogger("probe.alerts")


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


def _usable(index: int, config: NotifierConfig) -> bool:
    if not config.enabled:
        return False
    why_not = config.unconfigured()
    if why_not:
        ident = f"{config.type}[{index}]"
        log.warning(
            "%s notifier %d skipped: %s", config.type, index, why_not, extra={"notifier": ident}
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
        fleet: Fleet | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.agent = config.agent.name
        depends_on = {c.name: list(c.depends_on) for c in config.all_checks() if c.depends_on}
        self.parents = _parents(config)
        members = {c.name: [m.name for m in c.members()] for c in config.all_checks()}
        self.maintenance = Maintenance(config.maintenance, members=members, depends_on=depends_on)
        self.engine = AlertEngine(config.alerts, self.parents, depends_on, self.maintenance)
        self.notes = IncidentNotes()
        self.grouper = Grouper(config.alerts.group_wait)
        self.redactor = Redactor(config.secrets())
        self.backoff = backoff
        self.retry_after_cap = retry_after_cap
        self.tick_interval = tick_interval or min(1.0, max(0.05, config.alerts.group_wait / 5))
        self._previous = previous
        # Told of every alert that goes out (history records incidents); kept on reload.
        self.listeners: list[Callable[[Alert], None]] = list(previous.listeners) if previous else []
        self._deliveries: list[Delivery] = []
        self._routes: dict[str, NotifierConfig] = {}  # delivery ident -> its filters
        # delivery ident -> the alert keys it was told fired: their resolve goes there even
        # when the alert escalated past the notifier's `severities` meanwhile.
        # Kept on reload, by notifier position and type like the queues.
        self._told: dict[str, set[tuple[str, str, str]]] = (
            {ident: set(keys) for ident, keys in previous._told.items()} if previous else {}
        )
        self._carried_counts: dict[tuple[str, str], int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._writer = StateWriter(config.agent.state_file, self._snapshot, state_retry_interval)
        self._started = self._stopped = False
        # In a fleet only the leader sends, and only what the shared record says is news.
        self.fleet = fleet

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        state = await self._initial_state()
        self._restore(state)
        self._session = notifier_session(self.config.alerts.notifiers)
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
            if isinstance(delivery.notifier, Resender):
                resend = self._resend_loop(delivery.ident, delivery.notifier)
                task = asyncio.create_task(resend, name="resend")
                self._tasks.append(task)
        self._writer.now()
        if self.fleet is not None:
            self.fleet.attach(self)

    async def stop(self, flush_timeout: float = 5.0, reloading: bool = False) -> None:
        """Bounded flush: undelivered notifications stay in the exported/saved state
        (on a reload, the next service takes them over in memory)."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks.clear()
        if not self._started:
            return
        self._flush(self.grouper.drain())
        if self.fleet is not None:
            await self.fleet.drain(flush_timeout / 2)
            self.fleet.detach(self)
        await asyncio.gather(*(d.drain(flush_timeout) for d in self._deliveries))
        for delivery in self._deliveries:
            await delivery.stop()
            if delivery.queue and reloading:
                log.info(
                    "%d notifications for %s still queued; the reloaded config sends them",
                    len(delivery.queue),
                    delivery.notifier.description,
                    extra={"notifier": delivery.ident, "pending": len(delivery.queue)},
                )
            elif delivery.queue:
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
        self._writer.now()
        self._writer.close()
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

    # ------------------------------------------------------------ maintenance

    def open_window(self, checks: list[str], duration: float, reason: str) -> Window:
        window = new_window(checks, duration, reason, self.clock())
        self.put_window(window)
        return window

    def put_window(self, window: Window) -> None:
        """Keep a run-time window opened (or closed) here or, in a fleet, through any replica."""
        self.maintenance.put(window, self.clock())
        if window.closed:
            log.info("maintenance window %s closed", window.id, extra={"window": window.id})
        else:
            log.info(
                "maintenance window %s opened for %s: %s",
                window.id,
                ", ".join(window.checks) or "every check",
                window.reason or "no reason given",
                extra={"window": window.id},
            )
        self._writer.soon(self._version(), force=True)

    def close_window(self, window_id: str) -> Window | None:
        window = self.maintenance.close(window_id, self.clock())
        if window is not None:
            log.info("maintenance window %s closed", window.id, extra={"window": window.id})
            self._writer.soon(self._version(), force=True)
        return window

    def add_note(self, incident: str, text: str) -> Note:
        note = new_note(incident, text, self.clock())
        self.put_note(note)
        return note

    def put_note(self, note: Note) -> None:
        self.notes.put(note)
        self._writer.soon(self._version(), force=True)

    def adopt_plans(self, windows: list[Window], notes: list[Note]) -> bool:
        """Take a fleet's shared windows and notes; True when they changed what is held."""
        now = self.clock()
        before = {w.id: w for w in self.maintenance.runtime}
        changed = self.maintenance.replace(windows, now)
        changed = self.notes.replace(notes) or changed
        if changed:
            self._writer.soon(self._version(), force=True)
        for window in self.maintenance.runtime:
            # The log of every replica, the leader's included, says why nothing paged.
            old = before.get(window.id)
            if old is None and window.active(now):
                log.info(
                    "maintenance window %s opened for %s (shared by the fleet): %s",
                    window.id,
                    ", ".join(window.checks) or "every check",
                    window.reason or "no reason given",
                    extra={"window": window.id},
                )
            elif old is not None and window.closed and not old.closed:
                log.info(
                    "maintenance window %s closed (shared by the fleet)",
                    window.id,
                    extra={"window": window.id},
                )
        return changed

    def _version(self) -> int:
        # Each only grows: their sum changes whenever one does.
        return self.engine.version + self.maintenance.version + self.notes.version

    # ------------------------------------------------------------ readers

    def firing(self) -> dict[str, int]:
        return self.engine.firing_counts()

    def notification_counts(self) -> dict[tuple[str, str], int]:
        counts = dict(self._carried_counts)
        for delivery in self._deliveries:
            for result in NOTIFICATION_RESULTS:
                key = (delivery.notifier.kind, result)
                counts[key] = counts.get(key, 0) + delivery.counts[result]
        return counts

    def export_state(self) -> SavedState:
        """For the service that takes over on reload: what is pending goes with it."""
        return self._state(tuple(self.grouper.drain()))

    def _state(self, pending: tuple[Alert, ...], remember: bool = True) -> SavedState:
        """The engine's alerts and every queue. Alerts not yet handed to a queue are saved
        as if they had been (routed as they will be), so neither a crash nor a reload loses
        them; `remember` records who was told, as handing them over does."""
        outbox = {d.ident: list(d.queue) for d in self._deliveries}
        if pending:
            notification = Notification(self.agent, self.clock(), pending)
            self._append_routed(outbox, notification, remember)
        return SavedState(
            alerts=self.engine.export(),
            outbox=outbox,
            saved_at=self.clock(),
            maintenance=self.maintenance.export(),
            notes=self.notes.export(),
        )

    # ------------------------------------------------------------ internals

    async def _initial_state(self) -> SavedState:
        if self._previous is not None:
            self._carried_counts = self._previous.notification_counts()
            return self._previous.export_state()
        path = self.config.agent.state_file
        loaded = await load_state_off_loop(path) if path else None
        return loaded or SavedState()

    def _restore(self, state: SavedState) -> None:
        if self._previous is not None:
            self.maintenance.carry(self._previous.maintenance)
            self.notes.carry(self._previous.notes)
        else:
            problems = self.maintenance.restore(state.maintenance, self.clock())
            problems += self.notes.restore(state.notes)
            for problem in problems:
                log.warning("ignoring part of the saved alert state: %s", problem)
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
        config: NotifierConfig,
        session: aiohttp.ClientSession,
        state: SavedState,
    ) -> None:
        notifier = build_notifier(config, session, self.redactor, self.config.agent.public_url)
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
        self._routes[delivery.ident] = config

    def routed(
        self, ident: str, notification: Notification, remember: bool = True
    ) -> Notification | None:
        """The part of a notification that notifier `ident`'s filters select, or None.
        `remember`: it goes out now, so its firing keys are noted for their resolves."""
        route = self._routes.get(ident)
        if route is None:
            return notification
        told = self._told.setdefault(ident, set())
        kept: list[Alert] = []
        for alert in notification.alerts:
            key = (alert.check, alert.component, alert.measure)
            if alert.kind is Kind.RESOLVED:
                if key in told or self._routes_alert(route, alert):
                    kept.append(alert)
                if remember:
                    told.discard(key)
            elif self._routes_alert(route, alert):
                kept.append(alert)
                if remember and alert.kind is not Kind.TEST:
                    told.add(key)
        if len(kept) == len(notification.alerts):
            return notification
        return replace(notification, alerts=tuple(kept)) if kept else None

    def _routes_alert(self, route: NotifierConfig, alert: Alert) -> bool:
        if alert.kind is Kind.TEST:
            return True
        names = [alert.check]
        parent = self.parents.get(alert.check)
        if parent is not None:
            names.append(parent)
        return route.routes(alert.severity.value, names)

    def _append_routed(
        self,
        outbox: dict[str, list[Notification]],
        notification: Notification,
        remember: bool = True,
    ) -> None:
        for ident, queue in outbox.items():
            part = self.routed(ident, notification, remember)
            if part is not None:
                queue.append(part)

    def _idents(self) -> set[str]:
        return {d.ident for d in self._deliveries}

    def _queue(self, due: list[Alert], now: float) -> None:
        for alert in due:
            _log_alert(alert)
        self.grouper.add(due, now)
        self._flush(self.grouper.due(now))
        self._writer.soon(self._version())

    def _flush(self, alerts: list[Alert]) -> None:
        alerts = self.engine.inhibit(alerts)  # a parent's failure seen during group_wait
        if not alerts:
            return
        if self.fleet is not None:
            self.fleet.submit(alerts)  # calls `send` on the leader, with what is news
            return
        self.send(alerts)

    def pending(self) -> bool:
        return bool(self.grouper)

    def send(self, alerts: list[Alert]) -> None:
        notification = Notification(self.agent, self.clock(), tuple(alerts))
        for delivery in self._deliveries:
            part = self.routed(delivery.ident, notification)
            if part is not None:
                delivery.put(part)
        self._writer.soon(self._version(), force=True)
        for listener in self.listeners:
            for alert in alerts:
                try:
                    listener(alert)
                except Exception:  # a broken listener must not stop notifications
                    log.exception("alert listener failed", extra={"alert": alert.key})

    def _outbox_changed(self) -> None:
        self._writer.soon(self._version(), force=True)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                now = self.clock()
                self._queue(self.engine.tick(now), now)
            except Exception:  # keep ticking: reminders must not die with one bad state
                log.exception("alert tick failed")

    async def _resend_loop(self, ident: str, notifier: Resender) -> None:
        route = self._routes[ident]
        while True:
            await asyncio.sleep(notifier.resend_interval)
            if self.fleet is not None and not self.fleet.is_leader():
                continue
            try:
                now = self.clock()
                active = [a for a in self.engine.active(now) if self._routes_alert(route, a)]
                await notifier.resend(active, self.agent, now)
            except Exception:  # keep re-sending: firing alerts expire in Alertmanager otherwise
                log.exception("re-sending firing alerts failed")

    def _snapshot(self) -> tuple[int, SavedState]:
        # A crash snapshot: who is told stays as it was until the queues take it.
        return self._version(), self._state(tuple(self.grouper.peek()), remember=False)


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
