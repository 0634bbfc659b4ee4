"""Latest results, run counters and the pre-serialised bodies of /health, /ready, /live.

Writers: the scheduler (`record`, `tick`). Readers: HTTP handlers, the metrics
collector and the alert engine (via `subscribe`). Readers never cause I/O; they take
bytes rendered here.

Rendering is bounded, not triggered: a result only marks the bodies dirty, and the next
reader renders them, at most `RENDERS_PER_SECOND` times a second (after a burst of
`RENDER_BURST`). Re-rendering on every result made each result cost O(checks): at 3,000
checks one core could not keep up. A reader arriving when the budget is spent gets the
last bodies, at most about 1/RENDERS_PER_SECOND old. Each check's serialised entry is
kept until its result (or its staleness) changes, so a render is mostly a join, and the
verbose body, which few ever ask for, is built only when asked, from the same snapshot
as the plain one.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from probe.contract.config import Config
from probe.contract.plugin import CheckConfig, MetricPoint
from probe.core.model import CheckResult, Health, Status
from probe.core.times import Clock
from probe.engine import health
from probe.engine.health import Entry

log = logging.getLogger("probe.store")

# Suited to checks taking 1 ms to 10 s.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A few renders a second keep bodies fresh to a fraction of a second, whatever the rate
# of results; the burst lets a quiet store answer a change at once.
RENDERS_PER_SECOND = 5.0
RENDER_BURST = 5
MAX_DERIVED = 64  # views of one snapshot kept at once
# A render for a reader on the loop (`refresh`) hands the loop back after this long, as a
# scrape does (`probe.engine.metrics_lines.SLICE_SECONDS`): at 3,000 checks a render is
# 3-8 ms of entries and bytes, and /live waited behind it.
RENDER_SLICE_SECONDS = 0.001

Listener = Callable[[str, CheckResult], None]
Coverage = Callable[[str, float], bool]  # (check, now) -> inside a maintenance window


def _never(check: str, now: float) -> bool:
    return False


@dataclass(slots=True)
class Observed:
    """One histogram series a check type declares: per-bucket counts (not cumulative),
    sum and count of the values its runs measured."""

    bucket_counts: list[int]
    total: float = 0.0
    count: int = 0

    def observe(self, bounds: Sequence[float], value: float) -> None:
        self.total += value
        self.count += 1
        index = bisect.bisect_left(bounds, value)
        if index < len(self.bucket_counts):
            self.bucket_counts[index] += 1

    def copy(self) -> Observed:
        return Observed(list(self.bucket_counts), self.total, self.count)


@dataclass(slots=True)
class RunStats:
    """Cumulative counters of one check, for Prometheus counters and the histograms."""

    runs: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0
    # (family name, labels) -> what the check's histogram points observed so far.
    observed: dict[tuple[str, tuple[str, ...]], Observed] = field(default_factory=dict)

    def add(self, result: CheckResult, histograms: Sequence[MetricPoint] = ()) -> None:
        self.runs[result.status] += 1
        self.duration_sum += result.response_time
        self.duration_count += 1
        index = bisect.bisect_left(DURATION_BUCKETS, result.response_time)
        if index < len(self.bucket_counts):
            self.bucket_counts[index] += 1  # non-cumulative here; the collector accumulates
        if histograms:
            self._observe(result, histograms)

    def _observe(self, result: CheckResult, histograms: Sequence[MetricPoint]) -> None:
        values = {(o.component, o.measure): o.value for o in result.observations}
        for point in histograms:
            value = values.get((point.component, point.measure))
            if value is None:
                continue  # not measured this run (a kept-alive connection has no connect)
            key = (point.family.name, point.labels)
            bounds = point.family.buckets
            series = self.observed.get(key)
            if series is None:
                series = self.observed[key] = Observed([0] * len(bounds))
            series.observe(bounds, value)

    def copy(self) -> RunStats:
        observed = {key: series.copy() for key, series in self.observed.items()}
        return RunStats(
            dict(self.runs),
            list(self.bucket_counts),
            self.duration_sum,
            self.duration_count,
            observed,
        )


@dataclass(frozen=True, slots=True)
class Rendered:
    status_code: int
    body: bytes


@dataclass(frozen=True, slots=True)
class _Fragment:
    """A check's serialised non-verbose entry and what it was serialised from."""

    result: CheckResult | None
    status: Status
    output: str
    maintenance: bool
    body: bytes


@dataclass(slots=True)
class _Slot:
    config: CheckConfig
    latest: CheckResult | None = None
    stats: RunStats = field(default_factory=RunStats)
    recorded_at: float = 0.0  # monotonic time `latest` arrived
    fragment: _Fragment | None = None
    histograms: tuple[MetricPoint, ...] = ()  # the config's histogram series
    # Every series the config feeds, made once: /metrics reads them on every scrape, and
    # making them there (thousands of short-lived objects a scrape) pushed the garbage
    # collector into full collections under back-to-back scrapes.
    points: tuple[MetricPoint, ...] = ()
    # The plain entry while the latest result is neither stale nor changed: a render of
    # thousands of checks then builds no entries (most of its time before).
    entry: health.Entry | None = None

    def configure(self, config: CheckConfig) -> None:
        self.config = config
        self.points = tuple(config.metric_points())
        self.histograms = tuple(p for p in self.points if p.family.kind == "histogram")
        self.entry = None

    def entry_bytes(self, entry: health.Entry) -> bytes:
        cached = self.fragment
        if (
            cached is None
            or cached.result is not entry.result
            or cached.status is not entry.status
            or cached.output != entry.output
            or cached.maintenance != entry.maintenance
        ):
            body = health.dumps(health.check_entry(entry, verbose=False))
            cached = self.fragment = _Fragment(
                entry.result, entry.status, entry.output, entry.maintenance, body
            )
        return cached.body


class RenderBudget:
    """A token bucket on the store's monotonic clock: `take` says whether a render may run."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one render saw: the verbose body is built from it later, consistently."""

    entries: list[health.Entry]
    now: float
    started: float
    status_code: int


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
        self._started_mono = self.monotonic()
        self.last_tick = time.monotonic()
        self._listeners: list[Listener] = []
        self._slots: dict[str, _Slot] = {}
        self.budget = RenderBudget(self.monotonic, RENDERS_PER_SECOND, RENDER_BURST)
        # Bumped on every change a reader could see; /metrics caches its bytes against it.
        self.generation = 0
        self._dirty = True
        self._renders = 0  # bodies installed so far: a render in slices is newer or dropped
        self._rendering: asyncio.Future[None] | None = None
        self._verbose: Rendered | None = None
        self._derived: dict[Hashable, Rendered] = {}
        # Set by the agent: the alert service owns the windows, and a reload replaces it.
        self.in_maintenance: Coverage = _never
        # Objects the verbose /health body carries beside the checks (the fleet's leader).
        self._extras: dict[str, Any] = {}
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
                slot.fragment = None  # `critical` or a group's members may have changed
            else:
                slot = _Slot(check)
            slot.configure(check)
            self._slots[check.name] = slot
        self.generation += 1
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
        self._changed()
        for listener in self._listeners:
            try:
                listener(name, result)
            except Exception:  # a broken consumer must not stop results being recorded
                log.exception("result listener failed", extra={"check": name})

    def _store(self, slot: _Slot, result: CheckResult) -> None:
        slot.latest = result
        slot.recorded_at = self.monotonic()
        slot.stats.add(result, slot.histograms)
        # Serialised now, a result at a time (tens of microseconds), rather than in the
        # next render, where hundreds of them held the loop for tens of milliseconds.
        slot.entry_bytes(self._effective(slot, self.clock()))

    def touch(self) -> None:
        """Something the bodies show changed besides results (a maintenance window)."""
        self._changed()

    def _changed(self) -> None:
        self.generation += 1
        self._dirty = True

    def tick(self) -> None:
        """Called by the scheduler's heartbeat, on the loop: proves progress, and lets the
        next reader refresh the time fields (timestamp, uptime, staleness)."""
        self.last_tick = time.monotonic()
        now = self.clock()
        self._live = Rendered(200, health.dumps(health.live_body(True, self._started(now), now)))
        self._dirty = True

    def set_extra(self, name: str, value: Any) -> None:
        """Add `name` to the verbose /health body; a change is seen by the next request."""
        if self._extras.get(name) != value:
            self._extras[name] = value
            self._verbose = None
            self.generation += 1

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------ rendering

    def entries(self, now: float | None = None) -> list[health.Entry]:
        """Top-level checks in config order, with staleness applied."""
        now = self.clock() if now is None else now
        return [self._effective(self._slots[n], now) for n in self._top_level]

    def _effective(self, slot: _Slot, now: float) -> health.Entry:
        age = self.monotonic() - slot.recorded_at
        maintenance = self.in_maintenance(slot.config.name, now)
        latest = slot.latest
        cached = slot.entry
        if (
            cached is not None
            and cached.result is latest
            and cached.maintenance == maintenance
            and latest is not None
            and age <= health.stale_after(slot.config)
        ):
            # Fresh and unchanged: the same entry as `health.effective` would make, but for
            # its `age`, which only a group's members are judged by (never cached).
            return cached
        entry = health.effective(slot.config, latest, now, age=age)
        if maintenance:
            entry = replace(entry, maintenance=True)
        # Only the entry of a fresh result (not "no result yet", not stale) is kept.
        fresh = latest is not None and entry.output is latest.output
        if fresh and not slot.config.has_members:
            slot.entry = entry
        return entry

    def _started(self, now: float) -> float:
        """The start as `now` minus the monotonic uptime: a step of the wall clock must
        not move the uptime /health and /live report."""
        return now - (self.monotonic() - self._started_mono)

    def render(self) -> None:
        """Render the plain bodies now, whatever the budget (reloads, tests)."""
        now = self.clock()
        entries = self.entries(now)
        fragments = [self._slots[e.config.name].entry_bytes(e) for e in entries]
        self._install(now, entries, fragments)

    async def refresh(self) -> None:
        """What a reader's `_fresh` does, for readers on the loop: the render (when one is
        due) hands the loop back every RENDER_SLICE_SECONDS. Concurrent readers share it."""
        if self._rendering is None:
            if not (self._dirty and self.budget.take()):
                return
            self._rendering = asyncio.ensure_future(self._render_in_slices())
            self._rendering.add_done_callback(self._rendered)
        await asyncio.shield(self._rendering)

    def _rendered(self, done: asyncio.Future[None]) -> None:
        if self._rendering is done:
            self._rendering = None

    async def _render_in_slices(self) -> None:
        slots, names, installed = self._slots, self._top_level, self._renders
        self._dirty = False  # a result recorded meanwhile marks the bodies dirty again
        now = self.clock()
        entries: list[health.Entry] = []
        fragments: list[bytes] = []
        started = time.perf_counter()
        for name in names:
            slot = slots[name]
            entry = self._effective(slot, now)
            entries.append(entry)
            fragments.append(slot.entry_bytes(entry))
            if time.perf_counter() - started > RENDER_SLICE_SECONDS:
                await asyncio.sleep(0)
                if self._renders != installed or self._slots is not slots:
                    return  # rendered at once meanwhile (a reload): those are newer
                started = time.perf_counter()
        # What the bodies say of the checks as a whole, a slice of its own.
        overall = health.overall(entries)
        ready = health.is_ready(entries)
        critical = [f for e, f in zip(entries, fragments, strict=True) if e.config.critical]
        await asyncio.sleep(0)
        if self._renders == installed and self._slots is slots:
            self._install(now, entries, fragments, (overall, ready, critical))

    def _install(
        self,
        now: float,
        entries: list[health.Entry],
        fragments: list[bytes],
        judged: tuple[Health, bool, list[bytes]] | None = None,
    ) -> None:
        """Make the bodies from a render's entries; `judged` is (overall, ready, the
        critical checks' fragments) when the caller worked them out already."""
        if judged is None:
            overall = health.overall(entries)
            ready = health.is_ready(entries)
            critical = [f for e, f in zip(entries, fragments, strict=True) if e.config.critical]
        else:
            overall, ready, critical = judged
        version = self.config.agent.version
        started = self._started(now)
        code = 503 if overall is Health.UNHEALTHY else 200
        self._overall = overall
        self._health = Rendered(
            code, health.health_bytes(overall, version, started, now, fragments)
        )
        self._ready = Rendered(200 if ready else 503, health.ready_bytes(ready, now, critical))
        self._live = Rendered(200, health.dumps(health.live_body(True, started, now)))
        self._snapshot = Snapshot(entries, now, started, code)
        self._verbose = None
        self._derived = {}
        self._renders += 1
        if self._rendering is None:
            self._dirty = False

    def _fresh(self) -> None:
        # While a render in slices runs, readers get the bodies it will replace.
        if self._dirty and self._rendering is None and self.budget.take():
            self.render()

    # ------------------------------------------------------------ readers

    @property
    def health(self) -> Rendered:
        self._fresh()
        return self._health

    @property
    def ready(self) -> Rendered:
        self._fresh()
        return self._ready

    @property
    def live(self) -> Rendered:
        return self._live

    @property
    def last_health(self) -> Rendered:
        """/health as last rendered, never rendering: for readers just past `refresh`."""
        return self._health

    @property
    def last_ready(self) -> Rendered:
        return self._ready

    @property
    def last_overall(self) -> Health:
        return self._overall

    @property
    def overall(self) -> Health:
        self._fresh()
        return self._overall

    @property
    def health_verbose(self) -> Rendered:
        """Built on first request after a render, from that render's snapshot."""
        self._fresh()
        if self._verbose is None:
            shot = self._snapshot
            body = health.health_body(
                shot.entries, self.config.agent.version, shot.started, shot.now, verbose=True
            )
            body.update(self._extras)
            self._verbose = Rendered(shot.status_code, health.dumps(body))
        return self._verbose

    def derived(self, key: Hashable, build: Callable[[Snapshot], Rendered]) -> Rendered:
        """Another view of the current snapshot (health+json, `?exclude=`), built when
        first asked and kept until the next render, as the verbose body is."""
        self._fresh()
        found = self._derived.get(key)
        if found is None:
            if len(self._derived) >= MAX_DERIVED:  # any query string makes a key
                self._derived.clear()
            found = self._derived[key] = build(self._snapshot)
        return found

    def fragment(self, entry: Entry) -> bytes:
        """A check's serialised plain entry (as in /health's `checks`), kept until it changes."""
        return self._slots[entry.config.name].entry_bytes(entry)

    def entry(self, name: str) -> Entry | None:
        """One check, group members included, as it stands now; None for an unknown name."""
        slot = self._slots.get(name)
        return None if slot is None else self._effective(slot, self.clock())

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

    def stats(self, name: str) -> RunStats:
        return self._slots[name].stats

    def metric_points(self, name: str) -> tuple[MetricPoint, ...]:
        """`check_config(name).metric_points()`, made once per config."""
        return self._slots[name].points
