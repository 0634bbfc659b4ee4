"""The /metrics scrape target (docs/metrics.md): one collector that reads the results store.

Values come from the scheduler's last run of each check, never from the scrape: a
scrape does no I/O and costs the same whether a check takes 1 ms or 10 s. Metric
families are built fresh on every scrape, so checks removed by a reload vanish
without bookkeeping. Label values are check names, queue names and fixed words from
the contract; error messages, URLs and secrets never become labels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from probe.contract.config import Config
from probe.contract.notification import NOTIFICATION_RESULTS, Severity
from probe.contract.plugin import CheckConfig, MetricFamily, MetricPoint
from probe.core.model import CheckResult, Health, Observation, Status
from probe.engine.metrics_lines import CheckLines
from probe.engine.store import DURATION_BUCKETS, Observed, ResultStore, RunStats

log = logging.getLogger("probe.metrics")

_FROM_LAST_RUN = "Values come from the last scheduled run, not from the scrape."
NAN = float("nan")


class AlertStats(Protocol):
    """What the alert engine exposes to metrics. Label values must be names, never URLs."""

    def firing(self) -> dict[str, int]:
        """severity (`warning`, `critical`) -> number of alerts firing now."""
        ...

    def notification_counts(self) -> dict[tuple[str, str], int]:
        """(notifier name, result: sent|failed|dropped) -> count since start."""
        ...


class StoreReader(Protocol):
    """What the collector reads: the live store, or a copy of it taken on the loop."""

    @property
    def config(self) -> Config: ...

    @property
    def overall(self) -> Health: ...

    def check_names(self) -> list[str]: ...

    def check_config(self, name: str) -> CheckConfig: ...

    def latest(self, name: str) -> CheckResult | None: ...

    def effective_status(self, name: str) -> Status: ...

    def stats(self, name: str) -> RunStats: ...


def build_registry(store: ResultStore, alerts: AlertStats | None) -> ProbeRegistry:
    """A registry of our own (never the global one), for the agent to serve at /metrics."""
    return ProbeRegistry(store, alerts)


class ProbeRegistry(CollectorRegistry):
    """The agent's registry, which can also hand out a copy of itself frozen in time.

    Formatting 24 series per check costs hundreds of milliseconds at 1,000 checks: done on
    the loop, each scrape stalled /live and the checks. `frozen()` copies what the
    collector reads (cheap, on the loop), and the copy is formatted on a worker thread.
    """

    def __init__(self, store: ResultStore, alerts: AlertStats | None) -> None:
        super().__init__()
        self.store = store
        self.alerts = alerts
        # Collectors registered by others (history's) read plain counters: every frozen
        # copy serves them as they are. The two of our own get a fresh copy each time.
        self._shared: list[Collector] = []
        self._declared: dict[type[CheckConfig], None] = {}
        live = self._live = StoreCollector(store, alerts, self._declared)
        live._declare()  # the types configured at start, before any scrape or reload
        super().register(live)
        super().register(ProcessCollector(registry=None))

    def register(self, collector: Collector) -> None:
        super().register(collector)
        self._shared.append(collector)

    def frozen(self, per_check: bool = True) -> CollectorRegistry:
        """Must run on the loop; the registry it returns may be read from any thread.

        Without `per_check`, the copy leaves out the per-check families (and copies no
        check): what `check_lines` writes is served beside it.
        """
        registry = CollectorRegistry()
        alerts = None if self.alerts is None else FrozenAlerts.of(self.alerts)
        view = StoreView.of(self.store) if per_check else StoreView.summary(self.store)
        registry.register(StoreCollector(view, alerts, self._declared, per_check))
        ProcessCollector(registry=registry)
        for collector in self._shared:
            registry.register(collector)
        return registry

    def check_lines(self) -> tuple[list[Metric], CheckLines]:
        """The per-check families (empty, for their headers) and their lines' writer."""
        families = self._live._configured_families()
        return [*check_families(), *map(_family, families)], CheckLines(self.store, families)

    def version(self) -> tuple[object, ...]:
        """Changes whenever a scrape could differ, except for the passing of time."""
        if self.alerts is None:
            return (self.store.generation,)
        firing = tuple(sorted(self.alerts.firing().items()))
        counts = tuple(sorted(self.alerts.notification_counts().items()))
        return (self.store.generation, firing, counts)


@dataclass(frozen=True, slots=True)
class _Row:
    config: CheckConfig
    latest: CheckResult | None
    status: Status
    stats: RunStats


@dataclass(frozen=True, slots=True)
class StoreView:
    """The store as `StoreCollector` reads it, copied at one moment."""

    config: Config
    overall: Health
    rows: dict[str, _Row]

    @classmethod
    def of(cls, store: ResultStore) -> StoreView:
        rows = {}
        for name in store.check_names():
            rows[name] = _Row(
                store.check_config(name),
                store.latest(name),
                store.effective_status(name),
                store.stats(name).copy(),
            )
        return cls(store.config, store.overall, rows)

    @classmethod
    def summary(cls, store: ResultStore) -> StoreView:
        """Without the checks: what the families beside the per-check ones read. The
        overall status as last rendered: the caller refreshes the store first, in slices
        (`ResultStore.refresh`); a render here held the loop for 3-8 ms at 3,000 checks."""
        return cls(store.config, store.last_overall, {})

    def check_names(self) -> list[str]:
        return list(self.rows)

    def check_config(self, name: str) -> CheckConfig:
        return self.rows[name].config

    def latest(self, name: str) -> CheckResult | None:
        return self.rows[name].latest

    def effective_status(self, name: str) -> Status:
        return self.rows[name].status

    def stats(self, name: str) -> RunStats:
        return self.rows[name].stats


@dataclass(frozen=True, slots=True)
class FrozenAlerts:
    firing_now: dict[str, int]
    counts: dict[tuple[str, str], int]

    @classmethod
    def of(cls, alerts: AlertStats) -> FrozenAlerts:
        return cls(dict(alerts.firing()), dict(alerts.notification_counts()))

    def firing(self) -> dict[str, int]:
        return self.firing_now

    def notification_counts(self) -> dict[tuple[str, str], int]:
        return self.counts


class StoreCollector(Collector):
    def __init__(
        self,
        store: StoreReader,
        alerts: AlertStats | None = None,
        declared: dict[type[CheckConfig], None] | None = None,
        per_check: bool = True,
    ) -> None:
        self.store = store
        self.alerts = alerts
        # Config models whose families have been declared: a family stays declared after
        # a reload drops its last check, as it was when every type was declared.
        self.declared = {} if declared is None else declared
        if declared is None:
            self._declare()
        # Without the per-check families, the collector serves the few series beside them
        # (`CachedExposition` writes the per-check ones itself, in slices on the loop).
        self._sections: tuple[Callable[[], list[Metric]], ...] = (
            (self._check_metrics,) * per_check
            + (self._health_metrics,)
            + (self._plugin_metrics,) * per_check
            + (self._alert_metrics, self._build_metrics)
        )

    def collect(self) -> Iterable[Metric]:
        metrics: list[Metric] = []
        for section in self._sections:
            # One broken section must not turn the whole scrape into a 500.
            try:
                metrics.extend(section())
            except Exception:
                log.exception("metrics section %s failed", section.__name__)
        return metrics

    # ------------------------------------------------------------ checks

    def _check_metrics(self) -> list[Metric]:
        up, status, duration, runs, last_run = check_families()
        # collect() runs on the event loop, start to end: no reload can remove a check
        # between listing the names and reading them.
        for name in self.store.check_names():
            current = self.store.effective_status(name)
            latest = self.store.latest(name)
            stats = self.store.stats(name)
            up.add_metric([name], 1.0 if latest is not None and current is not Status.FAIL else 0.0)
            for each in Status:
                status.add_metric([name, each.value], 1.0 if each is current else 0.0)
                runs.add_metric([name, each.value], float(stats.runs.get(each, 0)))
            duration.add_metric(
                [name],
                _cumulative_buckets(stats.bucket_counts, stats.duration_count),
                stats.duration_sum,
            )
            last_run.add_metric([name], latest.observed_at if latest is not None else 0.0)
        return [up, status, duration, runs, last_run]

    def _health_metrics(self) -> list[Metric]:
        health = GaugeMetricFamily(
            "probe_health_status",
            "1 for the agent's current overall status (healthy, degraded, unhealthy), as in "
            f"/health. {_FROM_LAST_RUN}",
            labels=["status"],
        )
        overall = self.store.overall
        for each in Health:
            health.add_metric([each.value], 1.0 if each is overall else 0.0)
        return [health]

    # ------------------------------------------------------------ what check types feed

    def _plugin_metrics(self) -> list[Metric]:
        """The families check types declare, filled from each check's latest samples.

        Every configured series exists from the first scrape; a value not measured (no run
        yet, the target down) is NaN, never a made-up 0. Two checks feeding the same series
        (two bullmq checks watching a queue of the same name) would give duplicates, which
        the contract has no label to tell apart: the first in config order wins.
        """
        # Keyed by name and kind: the counter probe_queue_jobs(_total) and the gauge
        # probe_queue_jobs share a name.
        families: dict[tuple[str, str], Metric] = {
            (family.name, family.kind): _family(family) for family in self._configured_families()
        }
        seen: set[tuple[str, str, tuple[str, ...]]] = set()
        for name in self.store.check_names():
            config = self.store.check_config(name)
            latest = self.store.latest(name)
            values = {
                (o.component, o.measure): o
                for o in (latest.observations if latest is not None else ())
                if o.value is not None
            }
            for point in config.metric_points():
                kind = (point.family.name, point.family.kind)
                key = (*kind, point.labels)
                if key in seen:
                    continue
                seen.add(key)
                _add_point(families[kind], point, values, self.store.stats(name))
        return list(families.values())

    def _configured_families(self) -> list[MetricFamily]:
        """The families of the configured check types, in config order.

        Read from the configs' own models: asking the plugin registry for every type's
        imported asyncpg, redis and psutil into an agent that checks only HTTP.
        """
        self._declare()
        found: dict[tuple[str, str], MetricFamily] = {}
        for model in list(self.declared):  # a copy: another scrape's thread may add to it
            for family in model.metric_families:
                found.setdefault((family.name, family.kind), family)
        return list(found.values())

    def _declare(self) -> None:
        for name in self.store.check_names():
            self.declared.setdefault(type(self.store.check_config(name)))

    # ------------------------------------------------------------ alerts and build

    def _alert_metrics(self) -> list[Metric]:
        firing = GaugeMetricFamily(
            "probe_alerts_firing",
            "Alerts firing now, by severity (warning, critical). The alert engine judges "
            f"each result as it comes in. {_FROM_LAST_RUN}",
            labels=["severity"],
        )
        notifications = CounterMetricFamily(
            "probe_notifications",
            "Notifications handed to each notifier since the agent started, by result "
            f"(sent, failed, dropped). {_FROM_LAST_RUN}",
            labels=["notifier", "result"],
        )
        by_severity = {severity.value: 0 for severity in Severity}
        counts: dict[tuple[str, str], int] = {}
        if self.alerts is not None:
            by_severity.update(self.alerts.firing())
            counts = self.alerts.notification_counts()
        for severity, count in by_severity.items():
            firing.add_metric([severity], float(count))
        # Every result of a known notifier is present, so rate() works from the first failure.
        for notifier in sorted({notifier for notifier, _ in counts}):
            results = [*NOTIFICATION_RESULTS]
            results += sorted({r for n, r in counts if n == notifier} - set(results))
            for result in results:
                notifications.add_metric(
                    [notifier, result], float(counts.get((notifier, result), 0))
                )
        return [firing, notifications]

    def _build_metrics(self) -> list[Metric]:
        info = GaugeMetricFamily(
            "probe_build_info",
            "Always 1; `version` is agent.version from the config (the app's version). "
            f"{_FROM_LAST_RUN}",
            labels=["version"],
        )
        info.add_metric([self.store.config.agent.version], 1.0)
        return [info]


# ---------------------------------------------------------------- helpers


def check_families() -> tuple[
    GaugeMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    CounterMetricFamily,
    GaugeMetricFamily,
]:
    """The five families every check has, empty, in the order they are served."""
    up = GaugeMetricFamily(
        "probe_check_up",
        "1 when the check's current status is pass or warn, 0 when it fails, is stale "
        f"or has no result yet. {_FROM_LAST_RUN}",
        labels=["check"],
    )
    status = GaugeMetricFamily(
        "probe_check_status",
        "1 for the check's current status (pass, warn, fail), 0 for the others; "
        f"warn before the first result, fail when stale. {_FROM_LAST_RUN}",
        labels=["check", "status"],
    )
    duration = HistogramMetricFamily(
        "probe_check_duration_seconds",
        f"How long each scheduled run of the check took. {_FROM_LAST_RUN}",
        labels=["check"],
    )
    runs = CounterMetricFamily(
        "probe_check_runs",
        f"Scheduled runs of the check since the agent started, by status. {_FROM_LAST_RUN}",
        labels=["check", "status"],
    )
    last_run = GaugeMetricFamily(
        "probe_check_last_run_timestamp_seconds",
        "Unix time the check's last scheduled run finished; 0 before the first run. "
        f"{_FROM_LAST_RUN}",
        labels=["check"],
    )
    return up, status, duration, runs, last_run


def _family(family: MetricFamily) -> Metric:
    doc = f"{family.doc} {_FROM_LAST_RUN}"
    if family.kind == "counter":
        return CounterMetricFamily(family.name, doc, labels=list(family.labels))
    if family.kind == "histogram":
        return HistogramMetricFamily(family.name, doc, labels=list(family.labels))
    return GaugeMetricFamily(family.name, doc, labels=list(family.labels))


def _add_point(
    family: Metric,
    point: MetricPoint,
    values: dict[tuple[str, str], Observation],
    stats: RunStats,
) -> None:
    if isinstance(family, HistogramMetricFamily):
        observed = stats.observed.get((point.family.name, point.labels))
        buckets, total = _histogram(point.family, observed)
        family.add_metric(list(point.labels), buckets, total)
    elif isinstance(family, GaugeMetricFamily | CounterMetricFamily):
        family.add_metric(list(point.labels), _value(point, values))


def _histogram(
    family: MetricFamily, observed: Observed | None
) -> tuple[list[tuple[str, float]], float]:
    """Running bucket totals and the sum; an unobserved series is all zeros, never NaN."""
    counts = observed.bucket_counts if observed else [0] * len(family.buckets)
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(family.buckets, counts, strict=True):
        running += count
        buckets.append((repr(float(bound)), float(running)))
    buckets.append(("+Inf", float(observed.count if observed else 0)))
    return buckets, observed.total if observed else 0.0


def _value(point: MetricPoint, values: dict[tuple[str, str], Observation]) -> float:
    found = values.get((point.component, point.measure))
    if found is None or found.value is None:
        return NAN
    if point.skip_note and found.note.startswith(point.skip_note):
        return NAN
    return float(found.value)


def _cumulative_buckets(counts: list[int], total: int) -> list[tuple[str, float]]:
    """The store keeps per-bucket counts; Prometheus wants running totals ending in +Inf."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(DURATION_BUCKETS, counts, strict=True):
        running += count
        buckets.append((repr(float(bound)), float(running)))
    buckets.append(("+Inf", float(total)))
    return buckets
