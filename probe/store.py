"""Latest results, bounded history and pre-serialised endpoint bodies.

Writers: the scheduler (`record`, `tick`). Readers: HTTP handlers, the metrics
collector and the alert engine (via `subscribe`). Readers never cause I/O or work
proportional to the number of checks; they take the bytes rendered here.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from probe import health
from probe.config import Config
from probe.contract import CheckConfig
from probe.model import CheckResult, Health, Status
from probe.times import Clock

log = logging.getLogger("probe.store")

HISTORY_SIZE = 60  # results kept per check
# Suited to checks taking 1 ms to 10 s.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Listener = Callable[[str, CheckResult], None]


@dataclass(slots=True)
class RunStats:
    """Cumulative counters of one check, for Prometheus counters and the histogram."""

    runs: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0

    def add(self, result: CheckResult) -> None:
        self.runs[result.status] += 1
        self.duration_sum += result.response_time
        self.duration_count += 1
        index = bisect.bisect_left(DURATION_BUCKETS, result.response_time)
        if index < len(self.bucket_counts):
            self.bucket_counts[index] += 1  # non-cumulative here; the collector accumulates


@dataclass(frozen=True, slots=True)
class Rendered:
    status_code: int
    body: bytes


@dataclass(slots=True)
class _Slot:
    config: CheckConfig
    latest: CheckResult | None = None
    history: deque[CheckResult] = field(default_factory=lambda: deque(maxlen=HISTORY_SIZE))
    stats: RunStats = field(default_factory=RunStats)
    recorded_at: float = 0.0  # monotonic time `latest` arrived


class ResultStore:
    def __init__(
        self, config: Config, clock: Clock = time.time, monotonic: Clock | None = None
    ) -> None:
        self.clock = clock
        # Ages (staleness, uptime) are measured on a clock no one steps: with the wall
        # clock, a step back of an hour made hour-old results look fresh for that hour.
        # A hand-moved clock (tests, replays) is the only time there is, so it moves
        # ages too.
        self.monotonic = monotonic or (time.monotonic if clock is time.time else clock)
        self.started_at = clock()
        self._started_mono = self.monotonic()
        self.last_tick = time.monotonic()
        self._listeners: list[Listener] = []
        self._slots: dict[str, _Slot] = {}
        self.reconfigure(config)

    # ------------------------------------------------------------ writers

    def reconfigure(self, config: Config) -> None:
        """Adopt a new config; checks that keep their name and type keep their results."""
        old = self._slots
        self.config = config
        self._top_level = [c.name for c in config.checks]
        self._slots = {}
        for check in config.all_checks():
            slot = old.get(check.name)
            if slot is not None and slot.config.type == check.type:
                slot.config = check
                self._slots[check.name] = slot
            else:
                self._slots[check.name] = _Slot(check)
        self.render()

    def record(self, name: str, result: CheckResult) -> None:
        slot = self._slots.get(name)
        if slot is None:  # a run that finished after its check was removed by a reload
            return
        self._store(slot, result)
        for member_name, member_result in result.members:
            member = self._slots.get(member_name)
            if member is not None:
                self._store(member, member_result)
        self.render()
        for listener in self._listeners:
            try:
                listener(name, result)
            except Exception:  # a broken consumer must not stop results being recorded
                log.exception("result listener failed", extra={"check": name})

    def _store(self, slot: _Slot, result: CheckResult) -> None:
        slot.latest = result
        slot.recorded_at = self.monotonic()
        slot.history.append(result)
        slot.stats.add(result)

    def tick(self) -> None:
        """Called by the scheduler's heartbeat: proves progress and refreshes time fields."""
        self.last_tick = time.monotonic()
        self.render()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------ rendering

    def entries(self, now: float | None = None) -> list[health.Entry]:
        """Top-level checks in config order, with staleness applied."""
        now = self.clock() if now is None else now
        return [self._effective(self._slots[n], now) for n in self._top_level]

    def _effective(self, slot: _Slot, now: float) -> health.Entry:
        age = self.monotonic() - slot.recorded_at
        return health.effective(slot.config, slot.latest, now, age=age)

    def _started(self, now: float) -> float:
        """The start as `now` minus the monotonic uptime: a step of the wall clock must
        not move the uptime /health and /live report."""
        return now - (self.monotonic() - self._started_mono)

    def render(self) -> None:
        now = self.clock()
        entries = self.entries(now)
        version = self.config.agent.version
        started = self._started(now)
        self.overall = health.overall(entries)
        body = health.health_body(entries, version, started, now)
        code = 503 if self.overall is Health.UNHEALTHY else 200
        self.health = Rendered(code, health.dumps(body))
        verbose = health.health_body(entries, version, started, now, verbose=True)
        self.health_verbose = Rendered(code, health.dumps(verbose))
        ready = health.is_ready(entries)
        self.ready = Rendered(200 if ready else 503, health.dumps(health.ready_body(entries, now)))
        self.live = Rendered(200, health.dumps(health.live_body(True, started, now)))

    # ------------------------------------------------------------ readers

    def is_alive(self, live_timeout: float) -> bool:
        return time.monotonic() - self.last_tick <= live_timeout

    def stalled_live(self) -> Rendered:
        """Rendered on request only when stalled: the heartbeat that renders is not running."""
        now = self.clock()
        body = health.live_body(False, self._started(now), now)
        return Rendered(503, health.dumps(body))

    def check_names(self) -> list[str]:
        """Every check, group members included, in config order."""
        return list(self._slots)

    def check_config(self, name: str) -> CheckConfig:
        return self._slots[name].config

    def latest(self, name: str) -> CheckResult | None:
        return self._slots[name].latest

    def effective_status(self, name: str) -> Status:
        return self._effective(self._slots[name], self.clock()).status

    def history(self, name: str) -> list[CheckResult]:
        return list(self._slots[name].history)

    def stats(self, name: str) -> RunStats:
        return self._slots[name].stats
