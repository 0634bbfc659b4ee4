"""Redis: memory, eviction policy, persistence, replication and clients, from one round trip.

One pipeline: `CONFIG GET maxmemory-policy` (managed Redis often refuses CONFIG; INFO's
`maxmemory_policy` stands in) and `INFO`. Evictions and rejected connections are counted
over the check's window from INFO's counters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal, Self

import redis.asyncio as aioredis
from pydantic import PrivateAttr, field_validator
from redis import exceptions as rx

from probe.checks import deep, redis_client
from probe.checks.errors import failure
from probe.contract import limits
from probe.contract.plugin import (
    Check,
    CheckConfig,
    CheckContext,
    MetricFamily,
    MetricPoint,
    Report,
)
from probe.core.fields import Duration
from probe.core.model import Sample, Unit
from probe.core.redact import redact_url, url_secrets
from probe.core.units import format_duration

NO_EVICTION = "noeviction"
# INFO counters whose increases over the window are measures.
_COUNTERS = ("evicted_keys", "rejected_connections")
DEEP_MEASURES = frozenset(
    {"eviction_policy", *_COUNTERS, "persistence", "replica_link", "clients", "restarts"}
)
# `eviction_policy` is 1 for a policy that evicts keys, so `> 0` is "it may evict". It
# fails instead when a bullmq check uses the same Redis (`RedisConfig.linked`): BullMQ
# loses jobs when their keys are evicted, and refuses any policy but noeviction itself.
# A Redis that BullMQ uses also refuses BullMQ's writes once full (noeviction), so its
# memory gets limits too; a cache that evicts runs full by design and gets none.
# `restarts` warns for `restart_window` after one: a restart empties a Redis that does
# not persist. docs/checks/redis.md says why each default, and why the others have none.
DEFAULT_WARN = limits.defaults({"restarts": 0, "eviction_policy": 0})
DEFAULT_FAIL = limits.defaults({"persistence": 0, "replica_link": 0})
BULLMQ_WARN = limits.defaults({"memory": "80%"})
BULLMQ_FAIL = limits.defaults({"eviction_policy": 0, "memory": "95%"})

_GAUGES: dict[str, MetricFamily] = {
    measure: MetricFamily(name, doc, ("check",))
    for measure, name, doc in (
        ("memory", "probe_redis_memory_usage_ratio", "Memory used as a share of maxmemory."),
        (
            "eviction_policy",
            "probe_redis_eviction_policy_evicts",
            "1 when maxmemory-policy lets Redis evict keys, 0 for noeviction.",
        ),
        (
            "evicted_keys",
            "probe_redis_window_evicted_keys",
            "Keys evicted over the check's window.",
        ),
        (
            "rejected_connections",
            "probe_redis_window_rejected_connections",
            "Connections refused at maxclients over the check's window.",
        ),
        (
            "persistence",
            "probe_redis_persistence_failures",
            "Persistence mechanisms (RDB, AOF) whose last write failed.",
        ),
        (
            "replica_link",
            "probe_redis_replica_link_down_seconds",
            "How long a replica's link to its primary has been down (NaN on a primary).",
        ),
        ("clients", "probe_redis_clients", "Connected clients."),
    )
}


class RedisConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"memory"} | DEEP_MEASURES
    default_warn: ClassVar[limits.LimitMap] = DEFAULT_WARN
    default_fail: ClassVar[limits.LimitMap] = DEFAULT_FAIL
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url"})
    metric_families: ClassVar[tuple[MetricFamily, ...]] = tuple(_GAUGES.values())

    type: Literal["redis"]
    url: str
    # How long one observed restart keeps `restarts` at 1 or more (and warning).
    restart_window: Duration = 900.0
    # Names of the bullmq checks that use the same Redis server; set by `linked`, never
    # from the config file.
    _bullmq_checks: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return redis_client.checked_url(value)

    @property
    def bullmq_checks(self) -> tuple[str, ...]:
        return self._bullmq_checks

    def linked(self, others: Sequence[CheckConfig]) -> Self:
        """This config knowing which bullmq checks share its Redis server (any db: the
        eviction policy is the server's)."""
        server = redis_client.server_of(self.url)
        names = tuple(
            other.name
            for other in others
            if other.type == "bullmq"
            and redis_client.server_of(str(getattr(other, "url", ""))) == server
        )
        copy = self.model_copy()
        # A private attribute, not `model_copy(update=...)`: that would leave pydantic's
        # private store (what `==` and copies read) at the default.
        copy._bullmq_checks = names
        return copy

    def default_limits(self) -> tuple[limits.LimitMap, limits.LimitMap]:
        if self._bullmq_checks:
            return {**DEFAULT_WARN, **BULLMQ_WARN}, {**DEFAULT_FAIL, **BULLMQ_FAIL}
        return self.default_warn, self.default_fail

    def metric_points(self) -> Iterable[MetricPoint]:
        labels = (self.name,)  # one tuple for all the check's series: they live as long as it
        for measure, family in _GAUGES.items():
            yield MetricPoint(family, labels, "", measure)

    def target(self) -> str:
        return redact_url(self.url)

    def secrets(self) -> list[str]:
        return url_secrets(self.url)


_Held = tuple[aioredis.Redis, redis_client.ClientKey, asyncio.AbstractEventLoop]


class RedisCheck(Check[RedisConfig]):
    config_model = RedisConfig

    def __init__(self, config: RedisConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        # The shared client this check holds (redis_client.CLIENTS), its key and its loop.
        self._held: (
            tuple[aioredis.Redis, redis_client.ClientKey, asyncio.AbstractEventLoop] | None
        ) = None
        self._counters = deep.CounterWindow(config.window)
        self._restarts = deep.RestartWatch(config.restart_window)

    async def run(self) -> Report:
        client = self._get_client()
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.config_get("maxmemory-policy")
                pipe.info()
                policy, info = await pipe.execute(raise_on_error=False)
            if isinstance(info, Exception):
                raise info
        except rx.TimeoutError:
            raise TimeoutError() from None
        except redis_client.DRIVER_ERRORS as exc:
            raise failure(exc, redis_client.words(exc, self.config.url)) from None
        counters = {name: float(info.get(name) or 0) for name in _COUNTERS}
        increases = self._counters.add(self.context.clock(), counters)
        samples = self._memory(info)
        samples.append(self._eviction_policy(policy, info))
        samples += _per_window(increases, self._counters.span())
        samples.append(_persistence(info))
        samples += _replica_link(info)
        samples.append(_clients(info))
        uptime = float(info.get("uptime_in_seconds") or 0)
        samples.append(self._restarts.sample(self.context.clock(), info.get("run_id"), uptime))
        return Report(samples=samples)

    def _memory(self, info: dict[str, Any]) -> list[Sample]:
        maxmemory = int(info.get("maxmemory") or 0)
        if maxmemory > 0:
            return [Sample("memory", int(info["used_memory"]) / maxmemory, Unit.RATIO)]
        if self.config.user_limited("memory"):
            # Say why a configured limit is never checked, rather than passing silently.
            return [Sample("memory", None, Unit.RATIO, note="maxmemory is not set")]
        return []

    def _eviction_policy(self, reply: Any, info: dict[str, Any]) -> Sample:
        policy, source = "", "CONFIG GET"
        if isinstance(reply, dict):
            policy = str(reply.get("maxmemory-policy") or "")
        if not policy:
            policy, source = str(info.get("maxmemory_policy") or ""), "INFO (CONFIG GET refused)"
        sharing = self.config.bullmq_checks
        if not policy:
            # Unknown must not read as safe where BullMQ's jobs are at stake.
            return Sample(
                "eviction_policy",
                None,
                Unit.NONE,
                note="CONFIG GET refused and INFO has no maxmemory_policy",
                unknown_warns=bool(sharing),
            )
        note = f"maxmemory-policy {policy}, from {source}"
        if policy != NO_EVICTION and sharing:
            note += (
                f"; bullmq check {', '.join(sharing)} uses this Redis: BullMQ loses jobs "
                f"when keys are evicted and needs {NO_EVICTION}"
            )
        elif policy != NO_EVICTION:
            note += "; keys are evicted when memory runs out"
        if policy != NO_EVICTION and not int(info.get("maxmemory") or 0):
            note += " (maxmemory is not set yet)"
        return Sample(
            "eviction_policy", int(policy != NO_EVICTION), Unit.NONE, note=note, note_explains=True
        )

    def _get_client(self) -> aioredis.Redis:
        if self._held is None:
            key = (self.config.url, self.config.timeout)
            client = redis_client.CLIENTS.acquire(key)
            self._held = (client, key, asyncio.get_running_loop())
        return self._held[0]

    async def close(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            _, key, loop = held
            await redis_client.CLIENTS.release(key, loop)


def _per_window(increases: dict[str, float] | None, span: float) -> list[Sample]:
    if increases is None:
        return [Sample(name, None, Unit.COUNT, note=deep.FIRST_RUN) for name in _COUNTERS]
    note = f"in the last {format_duration(span)}"
    return [Sample(name, increases[name], Unit.COUNT, note=note) for name in _COUNTERS]


def _persistence(info: dict[str, Any]) -> Sample:
    """How many of RDB and AOF failed their last write; Redis refuses writes after a
    failed RDB save while `stop-writes-on-bgsave-error` is on (its default)."""
    failed: list[str] = []
    if info.get("rdb_last_bgsave_status", "ok") != "ok":
        unsaved = int(info.get("rdb_changes_since_last_save") or 0)
        failed.append(f"last RDB save failed ({unsaved:,} changes not saved)")
    if int(info.get("aof_enabled") or 0):
        if info.get("aof_last_write_status", "ok") != "ok":
            failed.append("last AOF write failed")
        elif info.get("aof_last_bgrewrite_status", "ok") != "ok":
            failed.append("last AOF rewrite failed")
    return Sample(
        "persistence", len(failed), Unit.COUNT, note="; ".join(failed), note_explains=True
    )


def _replica_link(info: dict[str, Any]) -> list[Sample]:
    """A replica's link to its primary: 0 while up, else seconds since it went down."""
    if info.get("role") != "slave":
        return []
    primary = f"primary {info.get('master_host')}:{info.get('master_port')}"
    if info.get("master_link_status") == "up":
        return [Sample("replica_link", 0.0, Unit.SECONDS, note=f"up to {primary}")]
    since = int(info.get("master_link_down_since_seconds", -1))
    if since < 0:
        # Not linked since this replica started.
        since = int(info.get("uptime_in_seconds") or 0)
        note = f"down: never linked to {primary} since the replica started"
    else:
        note = f"down: no link to {primary}"
    if int(info.get("master_sync_in_progress") or 0):
        note += " (a full sync is in progress)"
    # Redis counts whole seconds: a link down for less than one still is down, not 0.
    return [
        Sample("replica_link", float(max(since, 1)), Unit.SECONDS, note=note, note_explains=True)
    ]


def _clients(info: dict[str, Any]) -> Sample:
    # Idle BullMQ workers wait in BZPOPMIN, so blocked clients are normal: said, not judged.
    blocked = int(info.get("blocked_clients") or 0)
    note = f"blocked_clients {blocked:,} (waiting in blocking commands, as idle BullMQ workers do)"
    return Sample("clients", int(info.get("connected_clients") or 0), Unit.COUNT, note=note)
