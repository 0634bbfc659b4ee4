"""Runs every check on its own interval and feeds the store; a heartbeat proves progress.

Every time here is the event loop's monotonic clock. APScheduler 3's AsyncIOScheduler
would do the same job, but it computes each wakeup from wall-clock datetimes: a clock stepped
back an hour (chrony `makestep`, a VM snapshot restore) parked every check and the
heartbeat for that hour, and nothing re-armed it when the clock was put right. Its jitter
is also added to the previous, already jittered, run, so a 10s interval averaged 10.5s.
A timer per check (a task only while it runs) keeps the semantics that were asked of
APScheduler: never two runs of one check at once (`max_instances=1`), slots missed while a
run overran or the loop stalled collapse into one run (`coalesce`), and a fault in a run
never ends the check's schedule.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass

from probe.engine.runner import CheckRunner
from probe.engine.store import ResultStore

log = logging.getLogger("probe.scheduler")

HEARTBEAT_SECONDS = 1.0
# Spread runs of checks sharing an interval, like Prometheus spreads scrapes, but never
# by more than a second: users read "interval" as a promise.
MAX_JITTER_SECONDS = 1.0


@dataclass(slots=True)
class Slots:
    """The nominal schedule of one check, `first + k * interval`, on the loop's clock.

    Each run lands within half the jitter of its own slot, so jitter spreads runs without
    ever accumulating: over many runs the interval averages exactly `interval`.
    """

    first: float
    interval: float
    jitter: float
    index: int = 0

    def due(self) -> float:
        nominal = self.first + self.index * self.interval
        return nominal + random.uniform(-self.jitter / 2, self.jitter / 2)

    def advance(self, now: float) -> int:
        """Move past a run that ended at `now`; returns how many slots it made us skip.

        A slot already passed is run at once, and several passed slots become that one
        run, as APScheduler's `coalesce=True` did.
        """
        latest = math.floor((now - self.first) / self.interval)
        skipped = max(0, latest - self.index - 1)
        self.index = max(self.index + 1, latest)
        return skipped


def jitter_for(interval: float) -> float:
    return min(interval * 0.1, MAX_JITTER_SECONDS)


def first_offsets(runners: list[CheckRunner]) -> list[float]:
    """Seconds after start of each check's first run.

    Critical checks run at once: /ready (and with it the app's Pod) waits for every one of
    their first results. The others sharing an interval are spread evenly across the rest
    of it, rather than all starting together and then running in lockstep.
    """
    by_interval: dict[float, list[int]] = {}
    for i, runner in enumerate(runners):
        if not runner.config.critical:
            by_interval.setdefault(runner.config.interval, []).append(i)
    offsets = [0.0] * len(runners)
    for interval, members in by_interval.items():
        for position, i in enumerate(members, start=1):
            offsets[i] = interval * position / (len(members) + 1)
    return offsets


class Scheduler:
    """Runs each check at its slots. Between runs a check is one timer on the loop; a task
    exists only while it runs (a sleeping task per check, its coroutine and its timer cost
    about 1 KB a check, 3 MB at 3,000 checks)."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store
        self._runners: list[CheckRunner] = []
        # The timer of each idle check, by name; a drain cancels them.
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Runs in progress: a drain lets these finish and cancels the idle checks' timers.
        self._busy: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._slots: dict[str, Slots] = {}  # by check name: a reload keeps each one's phase
        # Results of runs started before a reload belong to the old config; drop them.
        self._generation = 0

    def start(self, runners: list[CheckRunner]) -> None:
        """Must be called inside the running event loop."""
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(), name="heartbeat")
        self._add(runners)

    async def _beat(self) -> None:
        while True:
            self.store.tick()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def _add(self, runners: list[CheckRunner]) -> None:
        """Arm each check's first run. A check kept by a reload (same name and interval)
        keeps its slots, so its next run is when it was due: re-spreading first runs on every
        reload ran the early checks at once and starved the late ones under frequent HUPs."""
        self._runners = runners
        now = asyncio.get_running_loop().time()
        kept = self._slots
        self._slots = {}
        for runner, offset in zip(runners, first_offsets(runners), strict=True):
            interval = runner.config.interval
            slots = kept.get(runner.name)
            if slots is None or slots.interval != interval:
                slots = Slots(now + offset, interval, jitter_for(interval))
            self._slots[runner.name] = slots
            self._arm(runner, slots, self._generation)

    def _arm(self, runner: CheckRunner, slots: Slots, generation: int) -> None:
        """The check's next run at its next slot (at once when that has passed)."""
        loop = asyncio.get_running_loop()
        self._timers[runner.name] = loop.call_at(
            slots.due(), self._launch, runner, slots, generation
        )

    def _launch(self, runner: CheckRunner, slots: Slots, generation: int) -> None:
        self._timers.pop(runner.name, None)
        if generation != self._generation:
            return
        task = asyncio.get_running_loop().create_task(
            self._run(runner, slots, generation), name=f"check:{runner.name}"
        )
        self._busy.add(task)
        task.add_done_callback(self._busy.discard)

    async def _run(self, runner: CheckRunner, slots: Slots, generation: int) -> None:
        """One run, then the next one armed: never two runs of one check at once."""
        await self._run_once(runner, generation)
        skipped = slots.advance(asyncio.get_running_loop().time())
        if skipped:
            log.warning(
                "check %s skipped %d runs: its last run or the event loop overran",
                runner.name,
                skipped,
                extra={"check": runner.name},
            )
        if generation == self._generation:
            self._arm(runner, slots, generation)

    async def _run_once(self, runner: CheckRunner, generation: int) -> None:
        try:
            result = await runner.run()
            if generation == self._generation:
                self.store.record(runner.name, result)
        except Exception:  # the runner already turns check errors into results
            log.exception("check %s: run failed", runner.name, extra={"check": runner.name})

    async def replace(self, runners: list[CheckRunner]) -> None:
        """Swap in a new set of checks (reload); old ones finish or are cancelled, then close."""
        old = self._runners
        await self._stop_loops(timeout=max((r.config.timeout for r in old), default=0) + 1)
        await asyncio.gather(*(r.close() for r in old))
        self._add(runners)

    async def _stop_loops(self, timeout: float) -> None:
        self._generation += 1
        for timer in self._timers.values():
            timer.cancel()
        self._timers = {}
        running = set(self._busy)
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)

    async def shutdown(self, timeout: float = 3.0) -> None:
        """Stop scheduling, give running checks a bounded time, then close connections."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        await self._stop_loops(timeout)
        runners, self._runners = self._runners, []
        self._slots = {}
        await asyncio.gather(*(r.close() for r in runners))
