"""Writes the alert state file when alert state changes: coalesced, and quiet while failing.

A state file that cannot be written (read-only volume, missing mount) is logged once per
distinct error and retried on the next change of alert state or every `retry_interval`,
never on every tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from probe.core.units import format_duration
from probe.engine.alerts.state import SavedState, save_state

log = logging.getLogger("probe.alerts")

STATE_RETRY_INTERVAL = 30.0  # while the state file cannot be written


class StateWriter:
    def __init__(
        self,
        path: str,
        snapshot: Callable[[], tuple[int, SavedState]],
        retry_interval: float = STATE_RETRY_INTERVAL,
    ) -> None:
        """`snapshot` gives the engine's version and the state to write, on demand."""
        self.path = path
        self._snapshot = snapshot
        self._retry_interval = retry_interval
        self._scheduled = False
        self._closed = False
        self._saved_version = -1
        self._attempted_version = -1
        self._error: str | None = None  # why the last write failed, as logged
        self._retry_at = 0.0  # monotonic; only consulted while writes fail

    def soon(self, version: int, force: bool = False) -> None:
        """Coalesce the writes of one loop iteration (a group result moves many keys)."""
        if not self.path or self._scheduled or self._closed:
            return
        if not force and (version == self._saved_version or self._waits(version)):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.now()
            return
        self._scheduled = True
        loop.call_soon(self._scheduled_write)

    def close(self) -> None:
        """After this the file belongs to the next service; pending writes are dropped."""
        self._closed = True

    def _waits(self, version: int) -> bool:
        """While writes fail, the ticks do not retry: a new transition or the interval does."""
        if self._error is None or version != self._attempted_version:
            return False
        return time.monotonic() < self._retry_at

    def _scheduled_write(self) -> None:
        if not self._closed:
            self.now()

    def now(self) -> None:
        self._scheduled = False
        if not self.path:
            return
        version, state = self._snapshot()
        self._attempted_version = version
        error = save_state(self.path, state)
        if error is None:
            self._saved_version = version
            if self._error is not None:
                log.info("alert state file %s written again", self.path, extra={"path": self.path})
                self._error = None
            return
        self._retry_at = time.monotonic() + self._retry_interval
        if error != self._error:
            log.error(
                "cannot write alert state file %s: %s; alert state will not survive a restart "
                "until it can be written (retrying on each alert change and every %s)",
                self.path,
                error,
                format_duration(self._retry_interval),
                extra={"path": self.path},
            )
        self._error = error
