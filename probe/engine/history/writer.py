"""The batching writer: results and alerts in memory now, on disk about a second later.

`observe` and `record_alert` run on the event loop inside the store's and the alert
service's listeners: they only append to memory. A task writes what is new once per
`flush_interval` in one transaction, prunes once an hour and re-reads the rollups
(other replicas' too) once a minute. A store that is down, full or read-only costs one
log line when it starts failing, one when it is back, and the `probe_history_*`
metrics; results wait in memory (bounded by the raw retention) and go out on recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from probe.contract.notification import Alert, Kind
from probe.core.model import CheckResult
from probe.core.tasks import cancel_and_wait
from probe.core.times import Clock
from probe.core.units import timed_out_after
from probe.engine.history.clockguard import ClockGuard
from probe.engine.history.codec import decode_chunk, decode_day, encode_chunk, encode_day
from probe.engine.history.model import DAY, HOUR, Chunk, Incident, Rollup, day_of, hour_of
from probe.engine.history.retention import (
    DAILY_KEEP,
    HOURLY_KEEP,
    PRUNE_INTERVAL,
    RAW_KEEP,
    cutoffs,
)
from probe.engine.history.rollup import by_day, combine, rollup_chunk
from probe.engine.history.store import Backend, Batch, ChunkKey, HistoryError

log = logging.getLogger("probe.history")

FLUSH_INTERVAL = 1.0
RELOAD_INTERVAL = 60.0  # other replicas' rows show up on the page this late at most
OPERATION_TIMEOUT = 10.0
MAX_BACKOFF = 30.0
RECENT_INCIDENTS = 100
MAX_PENDING_INCIDENTS = 10_000
JUMPED = 3 * HOUR  # a wall clock this far ahead of the history's time: no prune at all

Hours = dict[str, dict[int, Rollup]]  # check -> hour start -> rollup


class HistoryWriter:
    def __init__(
        self,
        backend: Backend,
        source: str,
        checks: list[str],
        clock: Clock = time.time,
        flush_interval: float = FLUSH_INTERVAL,
        reload_interval: float = RELOAD_INTERVAL,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self.source = source
        self.checks = list(checks)
        self.clock = clock
        self.flush_interval = flush_interval
        self.reload_interval = reload_interval
        self.on_change = on_change
        # Own rows: authoritative in memory, written when dirty.
        self.hours: Hours = {}
        self._chunks: dict[ChunkKey, Chunk] = {}
        self._loaded: set[ChunkKey] = set()  # chunks known to hold what the store has
        self._new: set[ChunkKey] = set()  # results since the last rollup
        self._dirty: set[ChunkKey] = set()  # not yet written
        # Days of rollups to write again although no new result touched them: the store
        # was found removed or replaced, and memory holds what it had.
        self._rewrite_days: set[tuple[str, int]] = set()
        self._incidents: dict[tuple[str, str, str, str, float], Incident] = {}
        self._pending_incidents: dict[tuple[str, str, str, str, float], Incident] = {}
        # Other sources' rows, as last read.
        self.other_hours: Hours = {}
        self.daily: dict[str, dict[int, Rollup]] = {}
        # Every source added up, kept current hour by hour: the view reads these each
        # second, and recomputing 90 days of 50 checks each time would cost a second.
        self.merged: Hours = {}
        self.merged_days: Hours = {}
        # Bumped whenever a past hour changes (a reload, a late result): what the view
        # caches of past hours and days is good until then.
        self.generation = 0
        # State for people and metrics.
        self.available = False
        self.problem = ""
        self.writes_ok = 0
        self.writes_failed = 0
        self.dropped = 0
        self.pending_count = 0  # as of the last flush: metrics read it from another thread
        self._opened = False
        self._snapshot_loaded = False
        self._next_attempt = 0.0
        self._backoff = 1.0
        self._next_prune = 0.0
        self._next_reload = 0.0
        self.guard = ClockGuard()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ input (event loop, no I/O)

    def observe(
        self, check: str, result: CheckResult, interval: float, maintenance: bool = False
    ) -> None:
        if not self.guard.accept(result.observed_at):
            self.dropped += 1  # dated by a clock that jumped ahead: a row from the future
            return
        hour = hour_of(result.observed_at)
        key = (check, hour)
        chunk = self._chunks.get(key)
        if chunk is None:
            chunk = self._chunks[key] = Chunk(hour)
        chunk.add(result.observed_at, result.status, result.response_time, interval, maintenance)
        self._new.add(key)
        self._dirty.add(key)

    def record_alert(self, alert: Alert) -> None:
        if alert.kind not in (Kind.FIRING, Kind.ESCALATED, Kind.RESOLVED):
            return
        key = (self.source, alert.check, alert.component, alert.measure, alert.since)
        known = self._incidents.get(key)
        end = alert.at if alert.kind is Kind.RESOLVED else None
        summary = alert.summary if known is None or alert.kind is not Kind.RESOLVED else ""
        incident = Incident(
            check=alert.check,
            component=alert.component,
            measure=alert.measure,
            severity=alert.severity.value,
            summary=summary or (known.summary if known else alert.summary),
            start=alert.since,
            end=end,
            source=self.source,
        )
        self._incidents[key] = incident
        if len(self._pending_incidents) < MAX_PENDING_INCIDENTS:
            self._pending_incidents[key] = incident
        else:
            self.dropped += 1
        self._trim_incidents()

    # ------------------------------------------------------------ readers

    def _rebuild_merged(self) -> None:
        merged: Hours = {}
        for hours in (self.other_hours, self.hours):
            for check, by_hour in hours.items():
                target = merged.setdefault(check, {})
                for hour, rollup in by_hour.items():
                    found = target.get(hour)
                    target[hour] = rollup if found is None else combine([found, rollup])
        self.merged = merged
        self.merged_days = {check: by_day(hours) for check, hours in merged.items()}
        self.generation += 1

    def _update_merged(self, keys: set[ChunkKey]) -> None:
        days: set[tuple[str, int]] = set()
        current = hour_of(self.clock())
        if any(hour < current for _, hour in keys):
            self.generation += 1
        for check, hour in keys:
            parts = [
                found
                for found in (
                    self.other_hours.get(check, {}).get(hour),
                    self.hours.get(check, {}).get(hour),
                )
                if found is not None
            ]
            if parts:
                merged = parts[0] if len(parts) == 1 else combine(parts)
                self.merged.setdefault(check, {})[hour] = merged
                days.add((check, day_of(hour)))
        for check, day in days:
            hours = self.merged[check]
            of_day = [hours[h] for h in range(day, day + DAY, HOUR) if h in hours]
            self.merged_days.setdefault(check, {})[day] = combine(of_day)

    def incidents(self) -> list[Incident]:
        return sorted(self._incidents.values(), key=lambda i: i.start, reverse=True)

    def pending(self) -> int:
        return sum(len(self._chunks[k]) for k in self._dirty if k in self._chunks) + len(
            self._pending_incidents
        )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="history writer")

    async def stop(self, timeout: float = 3.0) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._next_attempt = 0.0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.flush()
        if self._dirty or self._pending_incidents:
            log.warning("history: %d results and alerts not written before stop", self.pending())
        with contextlib.suppress(HistoryError, TimeoutError):
            async with asyncio.timeout(timeout):
                await self.backend.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.flush()
            except Exception:  # a bug here must not end history for the agent's lifetime
                log.exception("history flush failed")
            await asyncio.sleep(self.flush_interval)

    async def flush(self) -> None:
        """Roll up what is new, then write it (when the store is due a try)."""
        wall = self.clock()
        # Retention, reloads and memory bounds go by the guarded time: a wall clock
        # stepped ahead must not prune (or forget) what is real.
        now = self.guard.now(wall)
        self._roll_up()
        if time.monotonic() >= self._next_attempt:
            try:
                async with asyncio.timeout(OPERATION_TIMEOUT):
                    await self._sync(now, prune=wall - now < JUMPED)
            except (HistoryError, TimeoutError) as exc:
                self._failed(str(exc) or timed_out_after(OPERATION_TIMEOUT))
        self._forget(now)
        self.pending_count = self.pending()
        if self.on_change is not None:
            self.on_change()

    # ------------------------------------------------------------ internals

    def _roll_up(self) -> None:
        for check, hour in self._new:
            self.hours.setdefault(check, {})[hour] = rollup_chunk(self._chunks[(check, hour)])
        self._update_merged(self._new)
        self._new.clear()

    async def _sync(self, now: float, prune: bool = True) -> None:
        if not self._opened:
            await self.backend.open()
            self._opened = True
        if not self._snapshot_loaded:
            await self._restore(now)
        if await self.backend.reopened():
            self._write_again()
        if self._dirty or self._pending_incidents or self._rewrite_days:
            await self._write()
        if prune and now >= self._next_prune:
            await self.backend.prune(cutoffs(now))
            self._next_prune = now + PRUNE_INTERVAL
        if now >= self._next_reload:
            await self._reload(now)
        self._recovered()

    async def _restore(self, now: float) -> None:
        """After a (re)start: own rollups and open chunks from the store, merged with memory."""
        await self._reload(now)
        keys = [(c, h) for c in self.checks for h in (hour_of(now) - HOUR, hour_of(now))]
        await self._merge_stored(keys)
        self._snapshot_loaded = True

    async def _merge_stored(self, keys: list[ChunkKey]) -> None:
        wanted = [k for k in keys if k not in self._loaded]
        if not wanted:
            return
        stored = await self.backend.read_chunks(self.source, wanted)
        for key in wanted:
            blob = stored.get(key)
            if blob is not None:
                try:
                    old = decode_chunk(key[1], blob)
                except ValueError as exc:
                    log.warning("history: ignoring unreadable raw rows of %s: %s", key[0], exc)
                else:
                    mine = self._chunks.get(key)
                    if mine is not None:
                        old.merge(mine)
                    self._chunks[key] = old
                    self._new.add(key)
            self._loaded.add(key)
        self._roll_up()

    def _write_again(self) -> None:
        """Everything memory holds of this source goes into the next batch: raw results
        of this hour and the last, 90 days of hourly rollups, daily rows beyond them and
        the recent incidents."""
        self._dirty |= set(self._chunks)
        self._rewrite_days |= {
            (check, day_of(hour)) for check, hours in self.hours.items() for hour in hours
        }
        self._rewrite_days |= {(check, day) for check, days in self.daily.items() for day in days}
        for key, incident in self._incidents.items():
            if incident.source == self.source:
                self._pending_incidents.setdefault(key, incident)

    async def _write(self) -> None:
        dirty = set(self._dirty)
        await self._merge_stored(sorted(dirty))
        batch = Batch(self.source)
        rewrite = set(self._rewrite_days)
        days = set(rewrite)
        for check, hour in dirty:
            batch.chunks[(check, hour)] = encode_chunk(self._chunks[(check, hour)])
            days.add((check, day_of(hour)))
        for check, day in days:
            own = self.hours.get(check, {})
            of_day = {(h - day) // HOUR: r for h, r in own.items() if day <= h < day + DAY}
            if not of_day and day in self.daily.get(check, {}):
                batch.daily[(check, day)] = self.daily[check][day]  # older than hourly rows
                continue
            batch.days[(check, day)] = encode_day(of_day)
            batch.daily[(check, day)] = combine(of_day.values())
        batch.incidents = list(self._pending_incidents.values())
        written_incidents = dict(self._pending_incidents)
        # Unmarked before the write, not after it: a result observed while the write is
        # under way marks its chunk again, and the next flush writes it (unmarking after
        # lost the last result of an hour, or before a stop, from the store).
        self._dirty -= dirty
        self._rewrite_days -= rewrite
        try:
            await self.backend.write(batch)
        except BaseException:
            self._dirty |= dirty
            self._rewrite_days |= rewrite
            raise
        for key, incident in written_incidents.items():
            if self._pending_incidents.get(key) is incident:
                del self._pending_incidents[key]
        self.writes_ok += 1

    async def _reload(self, now: float) -> None:
        snapshot = await self.backend.load(
            day_of(now - HOURLY_KEEP), day_of(now - DAILY_KEEP), RECENT_INCIDENTS
        )
        others: Hours = {}
        own_loaded = not self._snapshot_loaded
        for source, check, day, blob in snapshot.days:
            if source == self.source and not own_loaded:
                continue  # memory is ahead of the store: decoding 90 days of each check is waste
            try:
                hours = decode_day(blob)
            except ValueError as exc:
                log.warning("history: ignoring unreadable rollups of %s: %s", check, exc)
                continue
            if source == self.source:
                if own_loaded:  # once, at start: afterwards memory is ahead of the store
                    target = self.hours.setdefault(check, {})
                    for h, rollup in hours.items():
                        target.setdefault(day + h * HOUR, rollup)
                continue
            by_hour = others.setdefault(check, {})
            for h, rollup in hours.items():
                by_hour[day + h * HOUR] = rollup
        self.other_hours = others
        daily: dict[str, dict[int, Rollup]] = {}
        for _source, check, day, rollup in snapshot.daily:
            by_day = daily.setdefault(check, {})
            by_day[day] = combine([by_day[day], rollup]) if day in by_day else rollup
        self.daily = daily
        for incident in snapshot.incidents:
            self._incidents.setdefault(incident.key, incident)
        self._trim_incidents()
        self._rebuild_merged()
        self._next_reload = now + self.reload_interval

    def _trim_incidents(self) -> None:
        if len(self._incidents) > RECENT_INCIDENTS:
            keep = sorted(self._incidents.items(), key=lambda kv: kv[1].start, reverse=True)
            self._incidents = dict(keep[:RECENT_INCIDENTS])

    def _forget(self, now: float) -> None:
        """Bound memory: written chunks of past hours, rollups past retention."""
        current = hour_of(now)
        for key in [k for k in self._chunks if k[1] < current - HOUR and k not in self._dirty]:
            del self._chunks[key]
            self._loaded.discard(key)
        oldest_raw = hour_of(now - RAW_KEEP)
        for key in [k for k in self._dirty if k[1] < oldest_raw]:
            # Still unwritten after the raw retention: the store has been down for two days.
            self.dropped += len(self._chunks.pop(key, ()))
            self._dirty.discard(key)
        oldest = now - HOURLY_KEEP
        for hours in (self.hours, self.merged, self.merged_days):
            for by_hour in hours.values():
                for hour in [h for h in by_hour if h < oldest]:
                    del by_hour[hour]

    def _failed(self, words: str) -> None:
        self.writes_failed += 1
        if self.available or words != self.problem:
            log.warning(
                "history store %s unavailable: %s; keeping results in memory and retrying",
                self.backend.description,
                words,
                extra={"history": self.backend.description},
            )
        self.available = False
        self.problem = words
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(MAX_BACKOFF, self._backoff * 2)

    def _recovered(self) -> None:
        if not self.available and self.problem:
            log.info(
                "history store %s available again",
                self.backend.description,
                extra={"history": self.backend.description},
            )
        self.available = True
        self.problem = ""
        self._backoff = 1.0
