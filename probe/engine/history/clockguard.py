"""The history's own idea of "now", which a wall clock stepped forward cannot drag along.

A clock wrong in the future for a few seconds (a bad NTP source, a VM whose clock is put
right later) would otherwise date rows ahead of everything stored and prune real history
by retention cutoffs computed at a false "now". The guard carries the newest accepted
result's time forward by the monotonic clock: a result more than a day ahead of that is
not recorded, and pruning never uses a "now" beyond it. A clock that stays ahead for
`ACCEPT_AFTER` was the one that was wrong before; it is then taken as right.
"""

from __future__ import annotations

import logging
import time

from probe.core.times import Clock
from probe.core.units import format_duration
from probe.engine.history.model import DAY

log = logging.getLogger("probe.history")

AHEAD_LIMIT = DAY  # a result dated further ahead of the history than this is not recorded
ACCEPT_AFTER = 600.0  # seconds a clock must stay that far ahead to be believed


class ClockGuard:
    def __init__(self, monotonic: Clock = time.monotonic) -> None:
        self.monotonic = monotonic
        self._wall: float | None = None  # the last accepted result's time
        self._mono = 0.0  # ... and the monotonic clock then
        self._ahead_since: float | None = None  # monotonic, while results are refused
        self.refused = 0

    def expected(self) -> float | None:
        """What the wall clock should read now, judging by the results accepted so far."""
        if self._wall is None:
            return None
        return self._wall + (self.monotonic() - self._mono)

    def now(self, wall: float) -> float:
        """`wall`, unless it is ahead of what elapsed time explains: prune and forget by this."""
        expected = self.expected()
        return wall if expected is None else min(wall, expected)

    def accept(self, at: float) -> bool:
        """Whether a result observed at `at` may be recorded."""
        mono = self.monotonic()
        expected = self.expected()
        if expected is None or at <= expected + AHEAD_LIMIT:
            if self._ahead_since is not None:
                log.info("history: the wall clock agrees with the history again; recording")
                self._ahead_since = None
            # Followed back too: a clock put right after running ahead must not leave the
            # guard a day ahead, where it would let the next jump through.
            self._wall, self._mono = at, mono
            return True
        if self._ahead_since is None:
            self._ahead_since = mono
            log.warning(
                "history: the wall clock jumped %s ahead of the last result recorded; not "
                "recording results nor pruning history until it agrees again (or stays so "
                "for %s)",
                format_duration(at - expected),
                format_duration(ACCEPT_AFTER),
            )
        elif mono - self._ahead_since >= ACCEPT_AFTER:
            log.warning(
                "history: the wall clock has stayed %s ahead for %s; taking it as right",
                format_duration(at - expected),
                format_duration(ACCEPT_AFTER),
            )
            self._ahead_since = None
            self._wall, self._mono = at, mono
            return True
        self.refused += 1
        return False
