"""Wires config -> checks -> scheduler -> store -> endpoints, metrics and alerts.

One start path and one stop path; SIGHUP reloads, SIGTERM/SIGINT stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from probe.contract.config import Config, ConfigError, load_config, load_or_report
from probe.contract.plugin import AgentServices
from probe.core.incident_notes import Note, new_note
from probe.core.maintenance import Window, new_window
from probe.core.model import CheckResult
from probe.core.networds import address
from probe.core.redact import Redactor
from probe.core.tasks import cancel_and_wait
from probe.core.times import Clock
from probe.engine.alerts.service import AlertService
from probe.engine.factory import build_runner
from probe.engine.fleet.backend import BackendError
from probe.engine.fleet.wiring import fleet_collector, fleet_of, heartbeat_of, shared_history_paused
from probe.engine.history.service import History
from probe.engine.metrics import build_registry
from probe.engine.otlp.push import OtlpPush
from probe.engine.pings import Inbox
from probe.engine.runner import CheckRunner
from probe.engine.scheduler import Scheduler
from probe.engine.store import ResultStore
from probe.web.admin import AdminRoutes
from probe.web.history import HistoryView
from probe.web.routes import build_app
from probe.web.server import serve
from probe.web.settings import LiveSettings, WebSettings
from probe.web.status import StatusSite
from probe.web.views import Unavailable

log = logging.getLogger("probe.agent")

T = TypeVar("T")

# Together well inside Docker's 10 s stop grace period.
SHUTDOWN_CHECK_WAIT = 2.0  # seconds running checks get to finish on SIGTERM
NOTIFICATION_FLUSH = 4.0  # seconds pending alerts get to go out on SIGTERM
RELOAD_READ_TIMEOUT = 10.0  # seconds a reload may spend reading and validating the file
# Young-generation collections between two full ones (CPython's default is 10). A full
# collection walks every object the checks keep (their latest results, their sleeping
# runs): 20-30 ms of CPU at 3,000 `http` checks, every second or two while /metrics and
# /status were read back to back, none in the same 15 s at 100. Cycles that outlive two
# young collections are rare here (a run's garbage dies young), so they wait longer.
FULL_COLLECTION_AFTER = 100


class Agent:
    def __init__(
        self,
        config: Config,
        config_path: Path | None = None,
        clock: Clock = time.time,
        redactor: Redactor | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock
        self.redactor = redactor or Redactor(config.secrets())
        self.store = ResultStore(config, clock=clock)
        self.scheduler = Scheduler(self.store)
        # Replicas of one config: only the leader notifies and writes shared history.
        self.fleet = fleet_of(config, self.store, clock)
        self.alerts = AlertService(config, clock=clock, fleet=self.fleet)
        self.store.subscribe(self._forward_to_alerts)
        self.store.in_maintenance = self.in_maintenance
        self.history = History(config, self.store, clock)
        self.store.subscribe(self.history.observe)
        self.alerts.listeners.append(self.history.record_alert)  # carried over on reload
        # What the web reads: settings swapped on reload, and the status site's bodies.
        self.settings = LiveSettings.of(config.agent)
        self.planning = Planning(self)
        if self.fleet is not None:
            self.fleet.plans_sink = self.planning.adopt
        self.site = StatusSite(
            HistoryView(self.store, self.history.writer, self.settings, clock, self.planning),
            self.settings,
        )
        self.history.watch(self.site.mark_stale)
        # The agent, not the alert service, is the metrics' source: a reload swaps the service.
        self.registry = build_registry(self.store, self)
        # Heartbeat pings: a file of their own next to the alert state (docs/checks/heartbeat.md).
        self.inbox = Inbox(Inbox.path_for(config.agent.state_file), clock)
        self.inbox.configure(c.name for c in config.all_checks() if c.receives_pings)
        self.services = AgentServices(pings=self.inbox, results=self._latest)
        self.history.register_metrics(self.registry)
        self.otlp = OtlpPush(self.registry, config.agent, clock)
        if self.fleet is not None:
            self.registry.register(fleet_collector(self.fleet))
            self.history.paused = shared_history_paused(config, self.fleet)
        self.heartbeat = heartbeat_of(config, self.store)
        self._http: web.AppRunner | None = None
        self.port = 0
        self._stopped = False
        self._freezing: asyncio.TimerHandle | None = None

    def _forward_to_alerts(self, check: str, result: CheckResult) -> None:
        # Looked up on each call: a reload replaces the alert service.
        self.alerts.observe(check, result)

    def in_maintenance(self, check: str, now: float) -> bool:
        return self.alerts.maintenance.covers(check, now)  # a reload replaces the service

    def firing(self) -> dict[str, int]:
        return self.alerts.firing()

    def notification_counts(self) -> dict[tuple[str, str], int]:
        return self.alerts.notification_counts()

    def _runners(self, config: Config) -> list[CheckRunner]:
        return [build_runner(c, self.redactor, self.clock, self.services) for c in config.checks]

    def _latest(self, name: str) -> CheckResult | None:
        """Another check's latest result, for checks that read one (`vendor:`)."""
        return self.store.latest(name) if name in self.store.check_names() else None

    async def start(self) -> None:
        await self.inbox.start()
        await self._serve()
        if self.fleet is not None:
            await self.fleet.start()
        await self.alerts.start()
        if self.heartbeat is not None:
            self.heartbeat.start()
        await self.history.start()
        self.scheduler.start(self._runners(self.config))
        self.otlp.start()
        self._freeze(self.config)
        log.info(
            "probe started",
            extra={
                "agent": self.config.agent.name,
                "listen": address(self.config.agent.host, self.port),
                "checks": len(self.config.checks),
                "config": self.config.source,
            },
        )

    def _freeze(self, config: Config) -> None:
        """Put what lives as long as the checks out of the garbage collector's sight.

        Everything built so far (modules, config, checks) lives as long as the agent: out
        of the collector's sight, a full collection no longer walks it (measured at 1,000
        checks: the worst loop stall went from 441 ms to 90 ms). Checks make more at their
        first run (run counters, histogram series, client state), spread over their
        interval: frozen again once every check has run, a full collection at 3,000 `http`
        checks went from 30-40 ms to about 20 ms of CPU.
        """
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
        if self._freezing is not None:
            self._freezing.cancel()
        first_runs = max((c.interval + c.timeout for c in config.all_checks()), default=0.0)
        self._freezing = asyncio.get_running_loop().call_later(first_runs + 1.0, gc.freeze)

    def _refreeze(self, config: Config) -> None:
        if self._stopped or config is not self.config:
            return  # stopping, or another reload came first and will do it
        gc.unfreeze()
        gc.collect()
        self._freeze(config)

    async def _serve(self) -> None:
        agent = self.config.agent
        writer = self.history.writer
        admin = AdminRoutes(
            self.planning,
            self.store.check_names,
            writer.incidents if writer is not None else list,
            self.settings,
            self.clock,
        )
        app = build_app(self.store, self.settings, self.registry, self.site, self.inbox, admin)
        self._http = await serve(app, agent.host or None, agent.port)
        addresses = self._http.addresses  # the real port when listen asks for port 0
        self.port = int(addresses[0][1]) if addresses else agent.port

    async def reload(self) -> bool:
        """Load the config file again; keep the running config if the new one is invalid."""
        if self.config_path is None:
            log.warning("reload ignored: the agent was not started from a file")
            return False
        try:
            # Off the loop and bounded: a file on a hung mount must not freeze /live.
            config = await asyncio.wait_for(
                asyncio.to_thread(load_config, self.config_path), RELOAD_READ_TIMEOUT
            )
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected, keeping the running config: %s", problem)
            return False
        except TimeoutError:
            log.error(
                "reload rejected, keeping the running config: %s: not read within %gs",
                self.config_path,
                RELOAD_READ_TIMEOUT,
            )
            return False
        try:
            await self.apply(config)
        except Exception:  # a reload must never take the running agent down
            log.exception("reload failed; the agent keeps running with what it has")
            return False
        return True

    async def apply(self, config: Config) -> None:
        if config.agent.listen != self.config.agent.listen:
            log.warning("agent.listen changed; restart probe to listen on the new address")
        for key in ("fleet", "heartbeat"):
            if getattr(config.agent, key) != getattr(self.config.agent, key):
                log.warning("agent.%s changed; restart probe to apply it", key)
        self.redactor.update(config.secrets())
        self.config = config
        self.settings.swap(WebSettings.of(config.agent))
        self.store.reconfigure(config)
        self.history.reconfigure(config)
        self.inbox.configure(c.name for c in config.all_checks() if c.receives_pings)
        # Alerts first: results of runs that finish while the checks are swapped must
        # reach a running alert service, not the stopped one.
        old_alerts = self.alerts
        await old_alerts.stop(flush_timeout=NOTIFICATION_FLUSH, reloading=True)
        self.alerts = AlertService(config, clock=self.clock, previous=old_alerts, fleet=self.fleet)
        await self.alerts.start()
        await self.scheduler.replace(self._runners(config))
        await self.otlp.reconfigure(config.agent)
        # What the old config built was frozen with it, and frozen objects are never
        # collected: its checks, runners and alert service stayed for good, reload after
        # reload. One full collection of everything (tens of milliseconds at thousands of
        # checks), then the new config is frozen in its turn; on the next turn of the
        # loop, once this frame and its caller's no longer hold the old ones.
        asyncio.get_running_loop().call_soon(self._refreeze, config)
        log.info("config reloaded", extra={"checks": len(config.checks), "config": config.source})

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._freezing is not None:
            self._freezing.cancel()
        await self.scheduler.shutdown(SHUTDOWN_CHECK_WAIT)
        await self.otlp.stop()
        await self.alerts.stop(flush_timeout=NOTIFICATION_FLUSH)
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        if self.fleet is not None:
            await self.fleet.stop()  # after alerts: the last ones went through the record
        await self.history.stop()  # after alerts: their last incidents are written too
        await self.inbox.stop()
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        log.info("probe stopped")


class Planning:
    """Windows and notes for the web: kept by the alert service in force (a reload
    replaces it and hands them on), shown on the status page as soon as they change.
    In a fleet a write goes to the shared store first, and every round each replica
    takes the store's copy (`probe.fleet.plans`)."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def windows(self, now: float) -> list[Window]:
        return self._agent.alerts.maintenance.listing(now)

    def applies(self, window: Window, check: str) -> bool:
        return self._agent.alerts.maintenance.applies(window, check)

    async def open_window(self, checks: list[str], duration: float, reason: str) -> Window:
        fleet = self._agent.fleet
        if fleet is None:
            window = self._agent.alerts.open_window(checks, duration, reason)
        else:
            window = new_window(checks, duration, reason, self._agent.clock())
            await self._shared(fleet.plans.put_window(window))
            self._agent.alerts.put_window(window)
        self._changed()
        return window

    async def close_window(self, window_id: str) -> Window | None:
        fleet = self._agent.fleet
        if fleet is None:
            window = self._agent.alerts.close_window(window_id)
        else:
            now = self._agent.clock()
            window = await self._shared(fleet.plans.close_window(window_id, now))
            if window is not None:
                self._agent.alerts.put_window(window)
        self._changed()
        return window

    def notes(self) -> list[Note]:
        return list(self._agent.alerts.notes.notes)

    async def add_note(self, incident: str, text: str) -> Note:
        fleet = self._agent.fleet
        if fleet is None:
            note = self._agent.alerts.add_note(incident, text)
        else:
            note = new_note(incident, text, self._agent.clock())
            await self._shared(fleet.plans.add_note(note))
            self._agent.alerts.put_note(note)
        self._changed()
        return note

    def adopt(self, windows: list[Window], notes: list[Note]) -> None:
        """The fleet store's copy, each round."""
        if self._agent.alerts.adopt_plans(windows, notes):
            self._changed()

    async def _shared(self, write: Awaitable[T]) -> T:
        try:
            return await write
        except BackendError as exc:
            raise Unavailable(f"fleet store unreachable ({exc}); nothing changed") from None

    def _changed(self) -> None:
        self._agent.site.mark_stale()
        self._agent.store.touch()  # /health's `"maintenance": true` follows at once


def run_agent(config_path: Path, log_format: str) -> int:
    """`probe run`: 0 after a clean stop, 2 on a config error, 1 if it cannot start."""
    from probe.core.logs import setup_logging

    config = load_or_report(config_path)
    if config is None:
        return 2
    redactor = Redactor(config.secrets())
    setup_logging(log_format, redactor)
    try:
        return asyncio.run(_run_until_signalled(Agent(config, config_path, redactor=redactor)))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 0


async def _run_until_signalled(agent: Agent) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reload_requested = asyncio.Event()

    async def reload_one_at_a_time() -> None:
        # Reloads never overlap, and HUPs that arrive during one become one more reload:
        # two reloads at once would each build (and leak) a new alert service.
        while True:
            await reload_requested.wait()
            reload_requested.clear()
            try:
                await agent.reload()
            except Exception:  # the reloader must outlive any one bad reload
                log.exception("reload failed; the agent keeps running with what it has")

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    # A SIGTERM while starting (a state file on a hung volume) stops the start too.
    starting = loop.create_task(agent.start(), name="start")
    stopping = loop.create_task(stop.wait(), name="stop")
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        await cancel_and_wait(starting)
    try:
        starting.result()
    except asyncio.CancelledError:
        pass
    except OSError as exc:
        listen = agent.config.agent.listen
        log.error("cannot listen on %s: %s", listen, exc.strerror or exc)
        stopping.cancel()
        await agent.stop()
        return 1
    # Only once started: a HUP that came during the start is one reload now.
    reloader = loop.create_task(reload_one_at_a_time(), name="reloader")
    await stopping
    log.info("stopping", extra={"signal": "SIGTERM/SIGINT"})
    reloader.cancel()
    await asyncio.gather(reloader, return_exceptions=True)
    await agent.stop()
    return 0
