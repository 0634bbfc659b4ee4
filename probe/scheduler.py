"""Runs every check on its own interval and feeds the store; a heartbeat proves progress."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from probe.runner import CheckRunner
from probe.store import ResultStore

log = logging.getLogger("probe.scheduler")

HEARTBEAT_SECONDS = 1.0
# Spread runs of checks sharing an interval, like Prometheus spreads scrapes, but never
# by more than a second: users read "interval" as a promise.
MAX_JITTER_SECONDS = 1.0


class Scheduler:
    def __init__(self, store: ResultStore) -> None:
        self.store = store
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
        self._runners: list[CheckRunner] = []
        # APScheduler's own tasks: they return its job events, which only APScheduler reads.
        self._inflight: set[asyncio.Task[Any]] = set()
        # Results of runs started before a reload belong to the old config; drop them.
        self._generation = 0

    def start(self, runners: list[CheckRunner]) -> None:
        """Must be called inside the running event loop (APScheduler needs it)."""
        self._scheduler.start()
        self._scheduler.add_job(
            self.store.tick,
            IntervalTrigger(seconds=HEARTBEAT_SECONDS),
            id="heartbeat",
            next_run_time=datetime.now(UTC),
        )
        self._add(runners)

    def _add(self, runners: list[CheckRunner]) -> None:
        self._runners = runners
        now = datetime.now(UTC)
        for runner in runners:
            interval = runner.config.interval
            self._scheduler.add_job(
                self._run,
                IntervalTrigger(seconds=interval, jitter=min(interval * 0.1, MAX_JITTER_SECONDS)),
                args=[runner, self._generation],
                id=f"check:{runner.name}",
                name=runner.name,
                next_run_time=now,  # first results as soon as possible: /ready waits for them
                replace_existing=True,
            )

    async def _run(self, runner: CheckRunner, generation: int) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            result = await runner.run()
            if generation == self._generation:
                self.store.record(runner.name, result)
        except asyncio.CancelledError:
            # Only our own drain cancels a run (reload, shutdown); letting it propagate
            # would have APScheduler log it as a failed job with a traceback.
            return
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def replace(self, runners: list[CheckRunner]) -> None:
        """Swap in a new set of checks (reload); old ones finish or are cancelled, then close."""
        for runner in self._runners:
            job = self._scheduler.get_job(f"check:{runner.name}")
            if job is not None:
                job.remove()
        self._generation += 1
        old = self._runners
        await self._drain(timeout=max((r.config.timeout for r in old), default=0) + 1)
        await asyncio.gather(*(r.close() for r in old))
        self._add(runners)

    async def _drain(self, timeout: float) -> None:
        if not self._inflight:
            return
        _, pending = await asyncio.wait(set(self._inflight), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1)

    async def shutdown(self, timeout: float = 3.0) -> None:
        """Stop scheduling, give running checks a bounded time, then close connections."""
        if self._scheduler.running:
            self._scheduler.pause()
            self._generation += 1
            await self._drain(timeout)
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # APScheduler defers the shutdown to the next loop turn
        runners, self._runners = self._runners, []
        await asyncio.gather(*(r.close() for r in runners))

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            # The runner's timeout should make this impossible; if it happens, say so.
            log.warning(
                "check run skipped: the previous run is still going", extra={"job": event.job_id}
            )
        elif not isinstance(event.exception, asyncio.CancelledError):
            log.error("scheduled job failed: %s", event.exception, extra={"job": event.job_id})
