"""One leader per fleet: renew the lease every lease/3, step down before it can expire,
and let through only the notifications the alert record says are due.

Fencing is by time, on two clocks. The replica counts its lease from the moment it
*sent* the renewal, so it believes itself leader no longer than the store does, and
stops notifying when that time is up even if the store cannot be reached to say so. The
store refuses record writes from a holder whose lease has expired on its own clock, and
a notification goes out only after its record write succeeded.

Every replica's alert engine runs on its own results; followers drop what it makes due.
The leader, each round, also reconciles its engine with the record: a firing its engine
knows that the record has not (the old leader never sent it) goes out, and an open record
entry whose key its engine no longer has (the old leader died before the resolve) is
resolved, once this replica has seen enough runs of that check to judge.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from probe.contract.config import Config
from probe.contract.config.schema import FleetConfig
from probe.contract.notification import Alert, Kind
from probe.core.tasks import cancel_and_wait
from probe.core.times import Clock
from probe.engine.alerts.engine import AlertEngine, Phase
from probe.engine.fleet.backend import BackendError, LeaseBackend
from probe.engine.fleet.plans import PlansSink, SharedPlans
from probe.engine.fleet.record import Entry, apply, decide, key_of, record_key
from probe.engine.fleet.stores import open_backend
from probe.engine.store import ResultStore

log = logging.getLogger("probe.fleet")


class AlertSink(Protocol):
    """What the fleet uses of the alert service (`probe.engine.alerts.service.AlertService`)."""

    engine: AlertEngine
    config: Config

    def pending(self) -> bool:
        """Alerts are waiting out `group_wait`: the engine is ahead of what was submitted."""
        ...

    def send(self, alerts: list[Alert]) -> None:
        """Queue these alerts on every notifier, now."""
        ...


def identity(agent: str) -> str:
    """`botflow-probe@web-7d9f/12`: unique per process, readable in /health."""
    return f"{agent}@{socket.gethostname()}/{os.getpid()}"


class Fleet:
    def __init__(
        self,
        config: FleetConfig,
        agent: str,
        store: ResultStore,
        clock: Clock = time.time,
        backend: LeaseBackend | None = None,
    ) -> None:
        self.name = config.name
        self.lease = config.lease
        self.me = identity(agent)
        self.store = store
        self.clock = clock
        self.step = config.lease / 3  # renewal period, and the longest any store call may take
        self.backend = backend or open_backend(
            config.backend.get_secret_value(), config.name, self.step
        )
        # Run-time maintenance windows and incident notes, kept in the store for every replica.
        self.plans = SharedPlans(self.backend, clock)
        self.plans_sink: PlansSink | None = None
        self.holder: str | None = None
        self.problem = ""  # why the store cannot be reached, while it cannot
        self.elections = 0  # times this replica became leader
        self._leading = False
        self._valid_until = 0.0  # monotonic
        self._record: dict[str, Entry] = {}
        self._sink: AlertSink | None = None
        self._batches: list[list[Alert]] = []
        self._wake = asyncio.Event()
        self._reconcile_due = False
        self._busy = False
        self._tasks: list[asyncio.Task[None]] = []
        self._publish()

    # ------------------------------------------------------------ state

    def is_leader(self) -> bool:
        return self._leading and time.monotonic() < self._valid_until

    def status(self) -> dict[str, Any]:
        """The verbose /health `fleet` object."""
        return {
            "name": self.name,
            "leader": self.holder,
            "this_agent": self.me,
            "is_leader": self.is_leader(),
            "backend": "unreachable: " + self.problem if self.problem else "ok",
        }

    def _publish(self) -> None:
        self.store.set_extra("fleet", self.status())

    # ------------------------------------------------------------ wiring

    def attach(self, sink: AlertSink) -> None:
        self._sink = sink

    def detach(self, sink: AlertSink) -> None:
        if self._sink is sink:
            self._sink = None

    def submit(self, alerts: list[Alert]) -> None:
        """The alert service's due alerts: a follower drops them, the leader checks them
        against the record and sends what is news. Never waits."""
        if not self.is_leader():
            log.debug("not the leader: %d alerts left to the leader", len(alerts))
            return
        self._batches.append(alerts)
        self._wake.set()

    async def drain(self, timeout: float) -> None:
        """Wait for submitted alerts to reach the notifier queues (a clean stop)."""
        deadline = time.monotonic() + timeout
        while (self._batches or self._busy) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        log.info(
            "fleet %s: electing a leader through %s (lease %gs), this replica is %s",
            self.name,
            self.backend.description,
            self.lease,
            self.me,
            extra={"fleet": self.name},
        )
        self._tasks = [
            asyncio.create_task(self._elect_loop(), name="fleet lease"),
            asyncio.create_task(self._gate_loop(), name="fleet gate"),
        ]
        if self.plans_sink is not None:
            plans = self.plans.run(self.plans_sink, self.step)
            self._tasks.append(asyncio.create_task(plans, name="fleet plans"))

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks.clear()
        if self._leading:
            self._leading = False
            try:
                # Hand over now rather than after the lease runs out.
                await asyncio.wait_for(self.backend.release(self.me), self.step)
                log.info("fleet %s: lease released", self.name, extra={"fleet": self.name})
            except (BackendError, TimeoutError):
                pass  # it expires by itself
        await self.backend.close()

    # ------------------------------------------------------------ the lease

    async def _elect_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self._round(started)
            except Exception:  # the loop must outlive any one surprise
                log.exception("fleet %s: election round failed", self.name)
            self._publish()
            await asyncio.sleep(max(0.0, self.step - (time.monotonic() - started)))

    async def _round(self, started: float) -> None:
        try:
            holder = await asyncio.wait_for(self.backend.acquire(self.me, self.lease), self.step)
        except (BackendError, TimeoutError) as exc:
            self._unreachable(str(exc) or f"no answer within {self.step:g}s")
        else:
            self._reachable()
            self.holder = holder
            if holder == self.me:
                self._valid_until = started + self.lease
                if not self._leading:
                    await self._take_office()
            elif self._leading:
                self._step_down(f"{holder or 'nobody'} holds the lease now")
        if self._leading and time.monotonic() >= self._valid_until:
            self._step_down("the lease could not be renewed before it ran out")
            self.holder = None
        if self.is_leader():
            self._reconcile_due = True
            self._wake.set()

    async def _take_office(self) -> None:
        try:
            raw = await asyncio.wait_for(self.backend.load_record(), self.step)
        except (BackendError, TimeoutError) as exc:
            self._unreachable(str(exc) or f"no answer within {self.step:g}s")
            return  # leading without the record would repeat what was sent; next round
        self._record = _parse(raw)
        self._leading = True
        self.elections += 1
        opened = sum(1 for e in self._record.values() if e.open)
        log.warning(
            "fleet %s: this replica (%s) is the leader now; %d alerts open in the record",
            self.name,
            self.me,
            opened,
            extra={"fleet": self.name, "leader": self.me},
        )

    def _step_down(self, why: str) -> None:
        self._leading = False
        self._batches.clear()
        log.warning(
            "fleet %s: this replica stopped leading: %s",
            self.name,
            why,
            extra={"fleet": self.name},
        )

    def _unreachable(self, words: str) -> None:
        if not self.problem:
            log.error(
                "fleet %s: lease store %s unreachable: %s; this replica does not notify "
                "until it is back",
                self.name,
                self.backend.description,
                words,
                extra={"fleet": self.name},
            )
        self.problem = words

    def _reachable(self) -> None:
        if self.problem:
            log.info("fleet %s: lease store reachable again", self.name, extra={"fleet": self.name})
        self.problem = ""

    # ------------------------------------------------------------ the gate

    async def _gate_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._busy = True
            try:
                while self._batches:
                    await self._claim(self._batches.pop(0))
                if self._reconcile_due:
                    self._reconcile_due = False
                    await self._claim(self._reconciled())
            except Exception:  # the gate must outlive any one surprise
                log.exception("fleet %s: sending through the record failed", self.name)
            finally:
                self._busy = False

    async def _claim(self, alerts: Iterable[Alert]) -> None:
        sink = self._sink
        if sink is None or not self.is_leader():
            return
        now = self.clock()
        sends: list[Alert] = []
        updates: dict[str, Entry] = {}
        for alert in alerts:
            key = key_of(alert)
            entry = updates.get(key) or self._record.get(key)
            repeat = sink.engine.policy(alert.check).repeat
            out = decide(entry, alert, repeat, now)
            if out is not None:
                sends.append(out)
                updates[key] = apply(entry, out, now)
        if not sends:
            return
        try:
            written = await asyncio.wait_for(
                self.backend.write_record(self.me, {k: e.to_json() for k, e in updates.items()}),
                self.step,
            )
        except (BackendError, TimeoutError) as exc:
            # Not sent: the next round's reconcile tries again.
            self._unreachable(str(exc) or f"no answer within {self.step:g}s")
            return
        if not written:
            self._step_down("the store says the lease is no longer ours")
            return
        self._record.update(updates)
        if self.is_leader() and self._sink is sink:
            sink.send(sends)

    def _reconciled(self) -> list[Alert]:
        """What the engine and the record disagree on (see the module's docstring)."""
        sink = self._sink
        if sink is None or sink.pending():
            return []  # the engine's own news is still waiting out group_wait
        engine, now = sink.engine, self.clock()
        due: list[Alert] = []
        for state in engine.states.values():
            told = state.phase is Phase.FIRING and state.notified_severity is not None
            if told and not engine.muted(state.check, now):
                due.append(state.snapshot(Kind.FIRING, now))
        live = {record_key(*k) for k in engine.states}
        known = {c.name for c in sink.config.all_checks()}
        for key, entry in self._record.items():
            if not entry.open or key in live:
                continue
            if (
                entry.check in known
                and self._runs(entry.check) < engine.policy(entry.check).resolve_after
            ):
                continue  # too few runs here yet to say it is over
            due.append(entry.resolve_alert(now))
        return due

    def _runs(self, check: str) -> int:
        try:
            return sum(self.store.stats(check).runs.values())
        except KeyError:
            return 0


def _parse(raw: dict[str, str]) -> dict[str, Entry]:
    record: dict[str, Entry] = {}
    for key, text in raw.items():
        try:
            record[key] = Entry.from_json(text)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable alert record entry")
    return record


class FleetCollector(Collector):
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "probe_fleet_leader",
            "1 while this replica leads its fleet (it alone notifies), 0 otherwise.",
            labels=["fleet"],
        )
        gauge.add_metric([self.fleet.name], 1.0 if self.fleet.is_leader() else 0.0)
        return [gauge]
