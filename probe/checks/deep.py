"""What the deep measures of `postgres` and `redis` share: counters turned into increases
over the check's window, and restarts seen from one run to the next.

Pure: no driver, no I/O, so either check can import it without pulling in the other's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from itertools import pairwise

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
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._runs: deque[tuple[float, dict[str, float]]] = deque(maxlen=MAX_RUNS_PER_WINDOW)

    def add(self, now: float, counters: Mapping[str, float]) -> dict[str, float] | None:
        self._runs.append((now, dict(counters)))
        horizon = now - self.window
        while self._runs and self._runs[0][0] < horizon:
            self._runs.popleft()
        if len(self._runs) < 2:
            return None
        increases = dict.fromkeys(counters, 0.0)
        for (_, before), (_, after) in pairwise(self._runs):
            for name in increases:
                old, new = before.get(name), after.get(name)
                if new is None:
                    continue
                increases[name] += new - old if old is not None and new >= old else new
        return increases

    def span(self) -> float:
        """Seconds between the oldest and the newest run in the window."""
        if len(self._runs) < 2:
            return 0.0
        return self._runs[-1][0] - self._runs[0][0]


class RestartWatch:
    """Restarts the agent saw: the server's start (PostgreSQL's postmaster start time,
    Redis's run_id) differs from the previous run's. A server first seen young is not a
    restart: the whole stack may just have been deployed."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._start: object = None
        self._seen: deque[float] = deque(maxlen=MAX_RUNS_PER_WINDOW)

    def sample(self, now: float, start: object, uptime: float) -> Sample:
        """`restarts` within the last `window`, observed at `now`; `start` identifies
        the server's current life."""
        if self._start is not None and start != self._start:
            self._seen.append(now)
        self._start = start
        while self._seen and self._seen[0] < now - self.window:
            self._seen.popleft()
        if not self._seen:
            return Sample("restarts", 0, Unit.COUNT)
        at = readable_utc(now - uptime)
        note = (
            f"restarted at {at} ({format_duration(uptime)} ago), "
            f"{len(self._seen)} in the last {format_duration(self.window)}"
        )
        return Sample("restarts", len(self._seen), Unit.COUNT, note=note, note_explains=True)
