"""What the deep measures of `postgres` and `redis` share: default limits merged with the
user's, and counters turned into increases over the check's window.

Pure: no driver, no I/O, so either check can import it without pulling in the other's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from itertools import pairwise

from probe.units import Limit, parse_limit

# Runs kept per window; bounds memory whatever `window / interval` is.
MAX_RUNS_PER_WINDOW = 10_000
FIRST_RUN = "no earlier run to compare with yet"


def limits(raw: Mapping[str, object]) -> dict[str, Limit]:
    """Default limits written as a user writes them (`5m`, `<5m`, `50%`, `20`)."""
    return {measure: parse_limit(value) for measure, value in raw.items()}


def with_defaults(
    warn: Mapping[str, Limit],
    fail: Mapping[str, Limit],
    default_warn: Mapping[str, Limit],
    default_fail: Mapping[str, Limit],
) -> tuple[dict[str, Limit], dict[str, Limit]]:
    """The user's limits over the defaults, level by level.

    A limit the user sets replaces the default of the same measure and level. A default
    of the other level stays only while it still makes sense beside the user's limit: the
    default `fail` is dropped when it is not beyond the user's `warn` (`warn:
    {lock_waiters: 50}` must not fail at 20), and the default `warn` is dropped when the
    user's `fail` is not beyond it (it could never show). A user's limit pointing the
    other way (`<` where the default has none) drops both defaults of that measure.
    """
    merged_warn, merged_fail = dict(warn), dict(fail)
    for measure, limit in default_fail.items():
        mine = warn.get(measure)
        if measure not in fail and (mine is None or _beyond(limit, mine)):
            merged_fail[measure] = limit
    for measure, limit in default_warn.items():
        mine = fail.get(measure)
        if measure not in warn and (mine is None or _beyond(mine, limit)):
            merged_warn[measure] = limit
    return merged_warn, merged_fail


def _beyond(worse: Limit, better: Limit) -> bool:
    """`worse` lies further on the bad side than `better`, both pointing the same way."""
    if worse.below != better.below:
        return False
    return worse.value < better.value if worse.below else worse.value > better.value


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
