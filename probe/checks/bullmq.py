"""BullMQ queues read straight from Redis, counted exactly as BullMQ counts them.

One pipelined round trip reads every configured queue, its job outcomes (a read-only
script over the events stream, `bullmq_events`) and `CLIENT LIST`; a second one, only
when some queue has waiting jobs, reads the creation time of each queue's next job.
The key layout and counting rules are BullMQ's own: `getCounts-1.lua` for the counts,
`queue-keys.ts` for the keys, `Queue.getWorkers()` for the workers.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import redis.asyncio as aioredis
from pydantic import Field, field_validator, model_validator
from redis.asyncio.client import Pipeline
from redis.exceptions import NoPermissionError, NoScriptError, RedisError, ResponseError

from probe.checks import redis_client
from probe.checks.bullmq_events import (
    SCRIPT,
    SCRIPT_SHA,
    QueueOutcomes,
    Reading,
    parse_reading,
    script_args,
)
from probe.checks.bullmq_outcomes import (
    MISSING,
    OUTCOME_MEASURES,
    expected_scheduler_samples,
    outcome_samples,
    schedule_samples,
    unknown_outcome_samples,
)
from probe.checks.errors import failure
from probe.contract import limits
from probe.contract.plugin import (
    Check,
    CheckConfig,
    CheckContext,
    CheckFailed,
    MetricFamily,
    MetricPoint,
    Report,
)
from probe.core.fields import Duration, Limits, StrictModel
from probe.core.model import Sample, Unit
from probe.core.networds import first_line
from probe.core.redact import Redactor, redact_url, url_secrets
from probe.core.units import Limit, format_duration

# The states of `Queue.getJobCounts()`, spelled as BullMQ spells them; each is also the
# measure name and the `state` label of `probe_queue_jobs`.
JOB_STATES: tuple[str, ...] = (
    "waiting",
    "paused",
    "prioritized",
    "active",
    "delayed",
    "completed",
    "failed",
    "waiting-children",
)
# Job outcomes over the check's `window`, per queue (docs/checks/bullmq.md).
QUEUE_MEASURES: frozenset[str] = frozenset(
    {*JOB_STATES, "backlog", "oldest_waiting_age", "workers", "is_paused", *OUTCOME_MEASURES}
)
# Per entry of `expect_schedulers`, judged against its `max_age`.
SCHEDULER_MEASURE = "last_success_age"
# The `outcome` label of probe_queue_job_outcomes_total, and the measure of each total.
OUTCOMES = ("completed", "failed", "stalled")

_LIST_KEYS = (("waiting", "wait"), ("paused", "paused"), ("active", "active"))
_ZSET_KEYS = ("prioritized", "delayed", "completed", "failed", "waiting-children")
# BullMQ 4 left "0:<n>" markers at the tail of `wait`; getCounts skips one (v5 too).
_LEGACY_MARKER = "0:"
# A Python worker names all its connections; the blocking one is recognisable because
# it only ever sets its name and then waits in BZPOPMIN (Redis 6 reports plain "client").
_BLOCKING_CONNECTION_COMMANDS = frozenset(
    {"bzpopmin", "client", "client|setname", "client|setinfo"}
)
CLIENT_LIST_REFUSED = "CLIENT LIST refused"
# States that are bad for any queue; docs/checks/bullmq.md says why each, and why the
# other measures (backlog, failure_ratio, workers, ...) have none.
DEFAULT_WARN = limits.defaults(
    {
        "schedulers_late": 0,  # a job scheduler's run is overdue by schedule_grace
        "events_lost": 0,  # the events stream was trimmed before it was read
        "stalled_rate": 0,  # a worker died or blocked its event loop mid-job
    }
)
# No worker is normal where workers scale to zero or only run on a schedule.
DEFAULT_FAIL: limits.LimitMap = {}

QUEUE_JOBS = MetricFamily(
    "probe_queue_jobs",
    "Jobs in a BullMQ queue by state, as Queue.getJobCounts() reports.",
    ("queue", "state"),
)
QUEUE_OLDEST_WAITING_AGE = MetricFamily(
    "probe_queue_oldest_waiting_age_seconds",
    "Age of the job next in line in a BullMQ queue's wait list.",
    ("queue",),
)
QUEUE_WORKERS = MetricFamily(
    "probe_queue_workers",
    "BullMQ workers connected to the queue, as Queue.getWorkers() counts.",
    ("queue",),
)
# prometheus_client adds `_total` to counter names: these print as
# probe_queue_job_outcomes_total and probe_queue_events_lost_total. (Not
# probe_queue_jobs_total: in OpenMetrics that counter's family is `probe_queue_jobs`, the
# name of the job-count gauge, an exposition Prometheus's own parser rejects.)
QUEUE_OUTCOMES = MetricFamily(
    "probe_queue_job_outcomes",
    "Final job outcomes (completed, failed, stalled) in a BullMQ queue's events stream "
    "since the agent started; a retried attempt is not a failure.",
    ("queue", "outcome"),
    kind="counter",
)
QUEUE_EVENTS_LOST = MetricFamily(
    "probe_queue_events_lost",
    "Entries of a BullMQ queue's events stream trimmed before the agent read them, since "
    "the agent started: the outcome counts are lower bounds by this much.",
    ("queue",),
    kind="counter",
)
SCHEDULER_NEXT_RUN = MetricFamily(
    "probe_queue_scheduler_next_run_timestamp_seconds",
    "Unix time of the pending run of an expected BullMQ job scheduler (producer clock).",
    ("queue", "scheduler"),
)
SCHEDULER_LAST_SUCCESS = MetricFamily(
    "probe_queue_scheduler_last_success_timestamp_seconds",
    "Unix time of the newest completed run of an expected BullMQ job scheduler seen in "
    "the events stream (Redis clock).",
    ("queue", "scheduler"),
)


class QueueLimits(StrictModel):
    """Per-queue `warn`/`fail` limits, merged over the check's own."""

    warn: Limits = Field(default_factory=dict)
    fail: Limits = Field(default_factory=dict)

    @field_validator("warn", "fail")
    @classmethod
    def _queue_measures(cls, value: dict[str, Limit]) -> dict[str, Limit]:
        for measure in value:
            if measure not in QUEUE_MEASURES:
                known = ", ".join(sorted(QUEUE_MEASURES))
                raise ValueError(f"unknown measure {measure!r} (known: {known})")
        return value


class ExpectedScheduler(StrictModel):
    """A job scheduler that must exist and must have completed a run within `max_age`."""

    queue: str
    id: str = Field(min_length=1)
    max_age: Duration

    @property
    def component(self) -> str:
        return scheduler_component(self.queue, self.id)


def scheduler_component(queue: str, scheduler: str) -> str:
    return f"{queue} scheduler {scheduler}"


class BullMQConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | QUEUE_MEASURES | {SCHEDULER_MEASURE}
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url"})
    default_warn: ClassVar[limits.LimitMap] = DEFAULT_WARN
    default_fail: ClassVar[limits.LimitMap] = DEFAULT_FAIL
    metric_families: ClassVar[tuple[MetricFamily, ...]] = (
        QUEUE_JOBS,
        QUEUE_OLDEST_WAITING_AGE,
        QUEUE_WORKERS,
        QUEUE_OUTCOMES,
        QUEUE_EVENTS_LOST,
        SCHEDULER_NEXT_RUN,
        SCHEDULER_LAST_SUCCESS,
    )

    type: Literal["bullmq"]
    url: str
    prefix: str = "bull"
    queues: list[str] = Field(min_length=1)
    queue_overrides: dict[str, QueueLimits] = Field(default_factory=dict)
    # Below this many finished jobs in the window, failure_ratio has no value (no verdict).
    min_jobs: int = Field(default=10, ge=1)
    schedule_grace: Duration = 60.0
    expect_schedulers: list[ExpectedScheduler] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return redis_client.checked_url(value)

    @field_validator("prefix")
    @classmethod
    def _prefix_given(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty (BullMQ's default is bull)")
        return value

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name:
                raise ValueError("queue names must not be empty")
            if ":" in name:
                # BullMQ itself refuses these ("Queue name cannot contain :").
                raise ValueError(f"queue name {name!r} contains ':', which BullMQ does not allow")
        duplicates = sorted({n for n in value if value.count(n) > 1})
        if duplicates:
            raise ValueError(f"queue {duplicates[0]!r} is listed twice")
        return value

    @model_validator(mode="after")
    def _overrides_name_queues(self) -> BullMQConfig:
        for queue in self.queue_overrides:
            if queue not in self.queues:
                raise ValueError(
                    f"queue_overrides.{queue}: no queue named {queue!r} in queues "
                    f"({', '.join(self.queues)})"
                )
        return self

    @model_validator(mode="after")
    def _expected_schedulers_name_queues(self) -> BullMQConfig:
        seen: set[tuple[str, str]] = set()
        for i, expected in enumerate(self.expect_schedulers):
            if expected.queue not in self.queues:
                raise ValueError(
                    f"expect_schedulers[{i}]: no queue named {expected.queue!r} in queues "
                    f"({', '.join(self.queues)})"
                )
            if (expected.queue, expected.id) in seen:
                raise ValueError(
                    f"expect_schedulers[{i}]: scheduler {expected.id!r} of queue "
                    f"{expected.queue!r} is listed twice"
                )
            seen.add((expected.queue, expected.id))
        return self

    def expected_on(self, queue: str) -> list[str]:
        return [e.id for e in self.expect_schedulers if e.queue == queue]

    def limits_for(self, component: str) -> tuple[dict[str, Limit], dict[str, Limit]]:
        warn, fail = self.check_limits()
        for expected in self.expect_schedulers:
            if expected.component == component:
                return warn, {**fail, SCHEDULER_MEASURE: self._max_age(expected)}
        override = self.queue_overrides.get(component)
        if override is None:
            return warn, fail
        # The queue's own limits go over the check's as the check's go over the defaults.
        return limits.merge(override.warn, override.fail, warn, fail)

    @staticmethod
    def _max_age(expected: ExpectedScheduler) -> Limit:
        return Limit(expected.max_age, text=format_duration(expected.max_age))

    def limit_rows(self) -> list[limits.LimitRow]:
        found = super().limit_rows()
        mine = {"": (self.warn, self.fail)}
        for queue, override in self.queue_overrides.items():
            paths = {f"queue_overrides.{queue}": (override.warn, override.fail), **mine}
            found += [
                row
                for row in limits.rows(queue, self.limits_for(queue), paths)
                if row.source.startswith("queue_overrides.")
            ]
        for i, expected in enumerate(self.expect_schedulers):
            found.append(
                limits.LimitRow(
                    expected.component,
                    "fail",
                    SCHEDULER_MEASURE,
                    self._max_age(expected),
                    f"expect_schedulers[{i}].max_age",
                )
            )
        return found

    def target(self) -> str:
        return f"{redact_url(self.url)} prefix {self.prefix}"

    def secrets(self) -> list[str]:
        return url_secrets(self.url)

    def metric_points(self) -> Iterator[MetricPoint]:
        for queue in self.queues:
            for state in JOB_STATES:
                yield MetricPoint(QUEUE_JOBS, (queue, state), queue, state)
            yield MetricPoint(QUEUE_OLDEST_WAITING_AGE, (queue,), queue, "oldest_waiting_age")
            yield MetricPoint(QUEUE_WORKERS, (queue,), queue, "workers")
            for outcome in OUTCOMES:
                yield MetricPoint(QUEUE_OUTCOMES, (queue, outcome), queue, f"{outcome}_total")
            yield MetricPoint(QUEUE_EVENTS_LOST, (queue,), queue, "events_lost_total")
        for expected in self.expect_schedulers:
            labels = (expected.queue, expected.id)
            component = expected.component
            yield MetricPoint(SCHEDULER_NEXT_RUN, labels, component, "next_run_timestamp")
            yield MetricPoint(SCHEDULER_LAST_SUCCESS, labels, component, "last_success_timestamp")


# ---------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class QueueState:
    """What the first round trip found for one queue."""

    name: str
    counts: dict[str, int]
    is_paused: bool
    version: str  # meta.version, e.g. "bullmq:5.12.0"; empty when the writer sets none
    # Per list (`wait`, then `paused`): the ids at its consuming end, next job first.
    # Two, so that when the next job is taken between our round trips its successor,
    # the new oldest, is already known.
    next_jobs: tuple[tuple[str, ...], ...]

    @property
    def next_job_ids(self) -> list[str]:
        return [job_id for ids in self.next_jobs for job_id in ids]

    @property
    def backlog(self) -> int:
        return self.counts["waiting"] + self.counts["paused"] + self.counts["prioritized"]


def queue_key_prefix(prefix: str, queue: str) -> str:
    return f"{prefix}:{queue}:"


def _queue_commands(pipe: Pipeline, keys: str) -> None:
    """Eleven reads per queue; `_parse_queue` takes the replies in the same order."""
    for _, key in _LIST_KEYS:
        pipe.llen(keys + key)
    for key in _ZSET_KEYS:
        pipe.zcard(keys + key)
    pipe.hmget(keys + "meta", ["paused", "version"])
    # Two from the tail, so a legacy marker there still leaves us the next job's id.
    pipe.lrange(keys + "wait", -2, -1)
    pipe.lrange(keys + "paused", -2, -1)


COMMANDS_PER_QUEUE = len(_LIST_KEYS) + len(_ZSET_KEYS) + 3


def _parse_queue(name: str, replies: Sequence[Any]) -> QueueState:
    lengths = dict(zip((state for state, _ in _LIST_KEYS), replies[:3], strict=True))
    sizes = dict(zip(_ZSET_KEYS, replies[3:8], strict=True))
    paused_flag, version = replies[8]
    wait_tail, paused_tail = replies[9], replies[10]
    counts = {
        **{state: int(n) for state, n in sizes.items()},
        "active": int(lengths["active"]),
        "waiting": _without_marker(int(lengths["waiting"]), wait_tail),
        "paused": _without_marker(int(lengths["paused"]), paused_tail),
    }
    next_jobs = tuple(ids for ids in (_next_job_ids(wait_tail), _next_job_ids(paused_tail)) if ids)
    return QueueState(
        name=name,
        counts={state: counts[state] for state in JOB_STATES},
        is_paused=paused_flag is not None,  # Queue.isPaused() is HEXISTS meta paused
        version=version or "",
        next_jobs=next_jobs,
    )


def _without_marker(length: int, tail: list[str]) -> int:
    if tail and tail[-1].startswith(_LEGACY_MARKER):
        return max(length - 1, 0)
    return length


def _next_job_ids(tail: list[str]) -> tuple[str, ...]:
    """BullMQ LPUSHes new jobs and takes from the tail (RPOPLPUSH): the tail is next."""
    return tuple(item for item in reversed(tail) if not item.startswith(_LEGACY_MARKER))


def node_client_name(prefix: str, queue: str) -> str:
    """How BullMQ for Node names a worker's connection (`QueueBase.clientName()`)."""
    return f"{prefix}:{base64.b64encode(queue.encode()).decode()}"


def count_workers(
    clients: Sequence[dict[str, str]], prefix: str, queues: Sequence[str]
) -> dict[str, int]:
    """Workers per queue from `CLIENT LIST`.

    Node workers name one connection `<prefix>:<base64(queue)>[:w:<name>]`, and each
    such connection is one Worker, as `Queue.getWorkers()` counts them. Python workers
    use the plain `<prefix>:<queue>[:w:<name>]` on every connection they open, so only
    their blocking connection is counted, to get one per Worker here too.
    """
    node_names = {node_client_name(prefix, q): q for q in queues}
    python_names = {f"{prefix}:{q}": q for q in queues}
    found = dict.fromkeys(queues, 0)
    for client in clients:
        name = client.get("name") or ""
        queue = _worker_queue(name, node_names)
        if queue is None and client.get("cmd", "") in _BLOCKING_CONNECTION_COMMANDS:
            queue = _worker_queue(name, python_names)
        if queue is not None:
            found[queue] += 1
    return found


def _worker_queue(name: str, bases: dict[str, str]) -> str | None:
    if name in bases:
        return bases[name]
    start = name.find(":w:")
    while start != -1:
        if name[:start] in bases:
            return bases[name[:start]]
        start = name.find(":w:", start + 1)
    return None


# ---------------------------------------------------------------- the check


class BullMQCheck(Check[BullMQConfig]):
    config_model = BullMQConfig

    def __init__(self, config: BullMQConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        self._client: aioredis.Redis | None = None
        # Outcomes since this object was made: a restart or reload starts a fresh window.
        self._outcomes = {queue: QueueOutcomes() for queue in config.queues}
        self._watching_since: float | None = None
        redactor = self.context.redactor or Redactor(config.secrets())
        self._redact: Callable[[str], str] = redactor

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            # Reads are bounded per round trip in `_execute` instead of per reply: a
            # per-reply timeout costs an asyncio timer for each of the 11 replies per
            # queue (a third of the time of a 1,000-queue collection).
            self._client = redis_client.connect(
                self.config.url, self.config.timeout, socket_timeout=None
            )
        return self._client

    async def run(self) -> Report:
        client = self._redis()
        now = self.context.clock()
        try:
            states, clients, readings = await self._read_queues(client, now)
            created = await self._read_next_job_times(client, states)
        except (RedisError, OSError, TimeoutError) as exc:
            await self.close()
            raise failure(exc, redis_client.words(exc, self.config.url)) from None
        except asyncio.CancelledError:
            # Cut off mid-reply (the run's deadline): the connection may still hold
            # unread replies, so it must never be used again.
            await self.close()
            raise
        workers = (
            count_workers(clients, self.config.prefix, self.config.queues)
            if clients is not None
            else None
        )
        now_ms = time.time() * 1000
        samples: list[Sample] = []
        for state in states:
            samples += _queue_samples(state, created, workers, now_ms)
        problems: list[str] = []
        for queue, reading in readings.items():
            samples += self._outcome_samples(queue, reading, now, problems)
        return Report(samples=samples, failure="; ".join(problems))

    def _outcome_samples(
        self, queue: str, reading: Reading | str, now: float, problems: list[str]
    ) -> list[Sample]:
        """Outcomes, schedules and expected schedulers of one queue; a missing expected
        scheduler adds its words to `problems` (the run fails with them)."""
        expected = [e for e in self.config.expect_schedulers if e.queue == queue]
        if isinstance(reading, str):
            samples = unknown_outcome_samples(queue, reading)
            for entry in expected:
                samples.append(
                    Sample(SCHEDULER_MEASURE, None, Unit.SECONDS, entry.component, reading)
                )
            return samples
        outcomes = self._outcomes[queue]
        outcomes.add(reading, now, self.config.window)
        if self._watching_since is None:
            self._watching_since = now
        samples = outcome_samples(
            queue, outcomes, self.config.window, self.config.min_jobs, self._redact
        )
        samples += schedule_samples(
            queue, reading.schedulers_late, reading.late_names, reading.delayed_overdue
        )
        for entry in expected:
            next_run = reading.next_runs.get(entry.id)
            if next_run is None:
                problems.append(f"{entry.component}: {MISSING}")
            samples += expected_scheduler_samples(
                entry.component,
                next_run,
                outcomes.last_success.get(entry.id),
                now,
                self._watching_since,
            )
        return samples

    async def _read_queues(
        self, client: aioredis.Redis, now: float, loaded: bool = False
    ) -> tuple[list[QueueState], list[dict[str, str]] | None, dict[str, Reading | str]]:
        config = self.config
        async with client.pipeline(transaction=False) as pipe:
            for queue in config.queues:
                keys = queue_key_prefix(config.prefix, queue)
                _queue_commands(pipe, keys)
                args = script_args(
                    self._outcomes[queue].cursor,
                    now,
                    config.schedule_grace,
                    keys,
                    config.expected_on(queue),
                )
                pipe.execute_command("EVALSHA_RO", SCRIPT_SHA, *args)
            pipe.client_list()
            replies = await self._execute(pipe)
        *queue_replies, client_list = replies
        states = []
        readings: dict[str, Reading | str] = {}
        size = COMMANDS_PER_QUEUE + 1
        refused = ""
        for i, queue in enumerate(config.queues):
            chunk = queue_replies[i * size : (i + 1) * size]
            self._raise_first_error(queue, chunk[:COMMANDS_PER_QUEUE])
            states.append(_parse_queue(queue, chunk[:COMMANDS_PER_QUEUE]))
            outcome = chunk[COMMANDS_PER_QUEUE]
            if isinstance(outcome, NoScriptError) and not loaded and not refused:
                # Once per Redis start (scripts live in its memory): load, then read again.
                try:
                    await client.script_load(SCRIPT)
                except ResponseError as exc:
                    refused = f"Redis refused the events read (SCRIPT LOAD): {first_line(exc)}"
                else:
                    return await self._read_queues(client, now, loaded=True)
            if refused and isinstance(outcome, NoScriptError):
                readings[queue] = refused
                continue
            readings[queue] = _reading_or_words(outcome, config.expected_on(queue))
        # Managed Redis (and ACLs) often refuse CLIENT; say so rather than report 0.
        clients = None if isinstance(client_list, Exception) else client_list
        return states, clients, readings

    async def _read_next_job_times(
        self, client: aioredis.Redis, states: list[QueueState]
    ) -> dict[tuple[str, str], float]:
        wanted = [(s.name, job_id) for s in states for job_id in s.next_job_ids]
        if not wanted:
            return {}
        async with client.pipeline(transaction=False) as pipe:
            for queue, job_id in wanted:
                pipe.hget(queue_key_prefix(self.config.prefix, queue) + job_id, "timestamp")
            replies = await self._execute(pipe)
        created: dict[tuple[str, str], float] = {}
        for key, reply in zip(wanted, replies, strict=True):
            if isinstance(reply, Exception):
                self._raise_first_error(key[0], [reply])
            try:
                created[key] = float(reply)
            except (TypeError, ValueError):
                continue  # the job finished between the two round trips
        return created

    async def _execute(self, pipe: Pipeline) -> list[Any]:
        async with asyncio.timeout(self.config.timeout):
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies

    def _raise_first_error(self, queue: str, replies: Sequence[Any]) -> None:
        for reply in replies:
            if isinstance(reply, ResponseError):
                if "WRONGTYPE" in str(reply):
                    raise CheckFailed(
                        f"queue {queue}: a key under {self.config.prefix}:{queue}: is not "
                        f"what BullMQ writes there (is prefix {self.config.prefix!r} right?)"
                    )
                raise CheckFailed(f"Redis refused a read of queue {queue}: {first_line(reply)}")
            if isinstance(reply, Exception):
                raise reply

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _reading_or_words(reply: Any, expected: list[str]) -> Reading | str:
    """The script's reading, or why there is none, in words (never a traceback)."""
    if isinstance(reply, ResponseError):
        text = first_line(reply)
        if "unknown command" in text.lower():
            return "job outcomes need Redis 7 or later (EVALSHA_RO)"
        if isinstance(reply, NoPermissionError):
            return f"Redis refused the events read (EVALSHA_RO): {text}"
        return f"events stream not read: {text}"
    if isinstance(reply, Exception):
        raise reply
    return parse_reading(reply, expected)


def _queue_samples(
    state: QueueState,
    created: dict[tuple[str, str], float],
    workers: dict[str, int] | None,
    now_ms: float,
) -> list[Sample]:
    queue = state.name
    samples = [
        Sample("backlog", state.backlog, Unit.COUNT, queue),
        _oldest_waiting_age(state, created, now_ms),
        _workers_sample(queue, workers),
    ]
    samples += [Sample(s, state.counts[s], Unit.COUNT, queue) for s in JOB_STATES]
    samples.append(Sample("is_paused", int(state.is_paused), Unit.COUNT, queue, state.version))
    return samples


def _oldest_waiting_age(
    state: QueueState, created: dict[tuple[str, str], float], now_ms: float
) -> Sample:
    if not state.next_jobs:
        return Sample("oldest_waiting_age", 0.0, Unit.SECONDS, state.name)
    known = (_first_known(state.name, ids, created) for ids in state.next_jobs)
    times = [t for t in known if t is not None]
    if not times:
        return Sample(
            "oldest_waiting_age", None, Unit.SECONDS, state.name, "next job left while being read"
        )
    # Producers' clocks may run ahead of ours; a job is never younger than zero.
    age = max(now_ms - min(times), 0.0) / 1000
    return Sample("oldest_waiting_age", age, Unit.SECONDS, state.name)


def _first_known(
    queue: str, ids: tuple[str, ...], created: dict[tuple[str, str], float]
) -> float | None:
    for job_id in ids:
        if (queue, job_id) in created:
            return created[(queue, job_id)]
    return None


def _workers_sample(queue: str, workers: dict[str, int] | None) -> Sample:
    # Unknown warns only under a limit the user set (runner.judge_sample), not the default.
    if workers is None:
        return Sample("workers", None, Unit.COUNT, queue, CLIENT_LIST_REFUSED, unknown_warns=True)
    return Sample("workers", workers[queue], Unit.COUNT, queue)
