"""History for the agent: the writer, built from config, and word of its changes.

`agent.history` is `off`, a `sqlite://` path or a `postgresql://` DSN. The default
SQLite path is used only when its directory exists and can be written (the image has
`/var/lib/probe`; a laptop usually does not): otherwise history is off, with one line
saying so. A path the
user chose is always tried, and a failing one is reported and retried, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from probe.contract.config import Config
from probe.contract.config.schema import DEFAULT_HISTORY
from probe.contract.notification import Alert
from probe.core.model import CheckResult
from probe.core.tasks import cancel_and_wait
from probe.core.times import Clock
from probe.engine.history.backends import open_backend
from probe.engine.history.metrics import HistoryCollector
from probe.engine.history.store import describe, is_postgres, sqlite_path
from probe.engine.history.writer import HistoryWriter
from probe.engine.store import ResultStore

log = logging.getLogger("probe.history")

REFRESH_WITHOUT_HISTORY = 1.0


def _usable_default(path: Path) -> bool:
    """The default file is used when its directory already exists and is writable: the
    image makes /var/lib/probe; on a laptop or in a test run it does not exist, and
    probe must not create directories under /var on its own."""
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def build_writer(config: Config, clock: Clock) -> HistoryWriter | None:
    dsn = config.agent.history.get_secret_value()
    if dsn == "off":
        log.info("history off (agent.history: off)")
        return None
    path = sqlite_path(dsn)
    if path is not None and dsn == DEFAULT_HISTORY and not _usable_default(path):
        log.info(
            "history off: %s does not exist or is not writable; set agent.history to a "
            "sqlite:// path or a postgresql:// DSN to keep it",
            path.parent,
        )
        return None
    # Replicas sharing one PostgreSQL keep their own rows, and the page adds them up.
    source = config.agent.name
    if is_postgres(dsn):
        source = f"{source}@{socket.gethostname()}"
    log.info("history kept in %s", describe(dsn), extra={"history": describe(dsn)})
    top_level = [c.name for c in config.checks]
    return HistoryWriter(open_backend(dsn), source, top_level, clock=clock)


def _never() -> bool:
    return False


class History:
    def __init__(self, config: Config, store: ResultStore, clock: Clock = time.time) -> None:
        self.store = store
        self.dsn = config.agent.history.get_secret_value()
        self.writer = build_writer(config, clock)
        self._watchers: list[Callable[[], None]] = []
        if self.writer is not None:
            self.writer.on_change = self._changed
        self._task: asyncio.Task[None] | None = None
        # True while another replica of the fleet writes the shared history.
        self.paused: Callable[[], bool] = _never

    def watch(self, callback: Callable[[], None]) -> None:
        """`callback()` whenever what history shows may have changed: after each batch
        write, after a reload, and without a writer once a second (current states)."""
        self._watchers.append(callback)

    def _changed(self) -> None:
        for callback in self._watchers:
            callback()

    def observe(self, check: str, result: CheckResult) -> None:
        """The store's listener: top-level results only, as /health lists them."""
        if self.writer is not None and not self.paused():
            interval = self.store.check_config(check).interval
            covered = self.store.in_maintenance(check, result.observed_at)
            self.writer.observe(check, result, interval, covered)

    def record_alert(self, alert: Alert) -> None:
        if self.writer is not None:
            self.writer.record_alert(alert)

    def reconfigure(self, config: Config) -> None:
        if config.agent.history.get_secret_value() != self.dsn:
            log.warning("agent.history changed; restart probe to keep history elsewhere")
        if self.writer is not None:
            self.writer.checks = [c.name for c in config.checks]
        self._changed()

    def register_metrics(self, registry: CollectorRegistry) -> None:
        if self.writer is None:
            return
        registry.register(HistoryCollector(self.writer))

    async def start(self) -> None:
        if self.writer is not None:
            self.writer.start()
        elif self._task is None:
            self._task = asyncio.create_task(self._refresh_loop(), name="status refresh")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_WITHOUT_HISTORY)
            self._changed()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.writer is not None:
            await self.writer.stop()
