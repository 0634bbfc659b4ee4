"""What the deep measures of `postgres` and `redis` share: counters turned into increases
over the check's window, and restarts seen from one run to the next.

Pure: no driver, no I/O, so either check can import it without pulling in the other's.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping

from probe.core.model import Sample, Unit
from probe.core.times import readable_utc
from probe.core.units import format_duration

# Runs kept per window; bounds memory whatever `window / interval` is.
MAX_RUNS_PER_WINDOW = 10_000
FIRST_RUN = "no earlier run to compare with yet"


class CounterWindow:
    """Increases of server counters over the check's window, from the values each run read.

    Counters are summed run to run, so a reset in between (a restart, `pg_stat_reset()`,
    `CONFIG RESETSTAT`) counts what was counted since the reset instead of going negative,
    as Prometheus's `increase()` does. The first run, or the first after a gap longer than
    the window, has nothing to compare with: `add` returns None.

    The runs are kept flat in one array of doubles, (time, value per counter) per run: a
    window of 5 minutes at a 5 s interval is 60 runs, 2 KB, where a dict per run took 20 KB.
    The counters are those of the first run; a counter missing from a later run is NaN
    there and adds nothing.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._names: tuple[str, ...] = ()
        self._runs = array("d")

    def add(self, now: float, counters: Mapping[str, float]) -> dict[str, float] | None:
        if not self._runs:
            self._names = tuple(counters)
        names = self._names
        stride = len(names) + 1
        if len(self._runs) >= MAX_RUNS_PER_WINDOW * stride:
            del self._runs[:stride]
        self._runs.append(now)
        self._runs.extend(float(counters.get(name, math.nan)) for name in names)
        horizon = now - self.window
        while self._runs and self._runs[0] < horizon:
            del self._runs[:stride]
        runs = len(self._runs) // stride
        if runs < 2:
            return None
        increases = dict.fromkeys(names, 0.0)
        for column, name in enumerate(names, start=1):
            total = 0.0
            for row in range(1, runs):
                old = self._runs[(row - 1) * stride + column]
                new = self._runs[row * stride + column]
                if math.isnan(new):
                    continue
                total += new - old if not math.isnan(old) and new >= old else new
            increases[name] = total
        return increases

    def span(self) -> float:
        """Seconds between the oldest and the newest run in the window."""
        stride = len(self._names) + 1
        if len(self._runs) < 2 * stride:
            return 0.0
        return self._runs[-stride] - self._runs[0]


class RestartWatch:
    """Restarts the agent saw: the server's start (PostgreSQL's postmaster start time,
    Redis's run_id) differs from the previous run's. A server first seen young is not a
    restart: the whole stack may just have been deployed."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._start: object = None
        # Restarts seen within the window: almost always none (an empty deque is 760 bytes).
        self._seen: list[float] = []

    def sample(self, now: float, start: object, uptime: float) -> Sample:
        """`restarts` within the last `window`, observed at `now`; `start` identifies
        the server's current life."""
        if self._start is not None and start != self._start:
            self._seen.append(now)
            del self._seen[:-MAX_RUNS_PER_WINDOW]
        self._start = start
        while self._seen and self._seen[0] < now - self.window:
            del self._seen[0]
        if not self._seen:
            return Sample("restarts", 0, Unit.COUNT)
        at = readable_utc(now - uptime)
        note = (
            f"restarted at {at} ({format_duration(uptime)} ago), "
            f"{len(self._seen)} in the last {format_duration(self.window)}"
        )
        return Sample("restarts", len(self._seen), Unit.COUNT, note=note, note_explains=True)
