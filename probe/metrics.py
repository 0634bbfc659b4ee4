"""The /metrics scrape target (DESIGN.md 2.4): one collector that reads the results store.

Values come from the scheduler's last run of each check, never from the scrape: a
scrape does no I/O and costs the same whether a check takes 1 ms or 10 s. Metric
families are built fresh on every scrape, so checks removed by a reload vanish
without bookkeeping. Label values are check names, queue names and fixed words from
the contract; error messages, URLs and secrets never become labels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from probe.checks.bullmq import JOB_STATES
from probe.checks.system import HOST as HOST_SOURCE
from probe.config import CheckConfig
from probe.model import Health, Observation, Status
from probe.store import DURATION_BUCKETS, ResultStore

log = logging.getLogger("probe.metrics")

_FROM_LAST_RUN = "Values come from the last scheduled run, not from the scrape."
NAN = float("nan")

# BullMQ's own getJobCounts() states; each becomes probe_queue_jobs{state}.
QUEUE_STATES = JOB_STATES
SEVERITIES = ("warning", "critical")
NOTIFICATION_RESULTS = ("sent", "failed", "dropped")


class AlertStats(Protocol):
    """What the alert engine exposes to metrics. Label values must be names, never URLs."""

    def firing(self) -> dict[str, int]:
        """severity (`warning`, `critical`) -> number of alerts firing now."""
        ...

    def notification_counts(self) -> dict[tuple[str, str], int]:
        """(notifier name, result: sent|failed|dropped) -> count since start."""
        ...


def build_registry(store: ResultStore, alerts: AlertStats | None) -> CollectorRegistry:
    """A registry of our own (never the global one), for the agent to serve at /metrics."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, alerts))
    ProcessCollector(registry=registry)
    return registry


class StoreCollector(Collector):
    def __init__(self, store: ResultStore, alerts: AlertStats | None = None) -> None:
        self.store = store
        self.alerts = alerts
        self._sections: tuple[Callable[[], list[Metric]], ...] = (
            self._check_metrics,
            self._health_metrics,
            self._queue_metrics,
            self._system_metrics,
            self._alert_metrics,
            self._build_metrics,
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

    # ------------------------------------------------------------ queues and system

    def _queue_metrics(self) -> list[Metric]:
        jobs = GaugeMetricFamily(
            "probe_queue_jobs",
            f"Jobs in a BullMQ queue by state, as Queue.getJobCounts() reports. {_FROM_LAST_RUN}",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "probe_queue_oldest_waiting_age_seconds",
            f"Age of the job next in line in a BullMQ queue's wait list. {_FROM_LAST_RUN}",
            labels=["queue"],
        )
        workers = GaugeMetricFamily(
            "probe_queue_workers",
            "BullMQ workers connected to the queue, as Queue.getWorkers() counts. "
            f"{_FROM_LAST_RUN}",
            labels=["queue"],
        )
        # Every configured queue has all its series from the first scrape; a value not
        # measured (no run yet, Redis down) is NaN, never a made-up 0. Two bullmq checks
        # watching a queue of the same name would give duplicate series (the contract has
        # no label to tell them apart): the first in config order wins.
        seen: set[str] = set()
        for config, values in self._latest_values("bullmq"):
            for queue in getattr(config, "queues", []):
                if queue in seen:
                    continue
                seen.add(queue)
                for state in QUEUE_STATES:
                    jobs.add_metric([queue, state], values.get((queue, state), NAN))
                oldest.add_metric([queue], values.get((queue, "oldest_waiting_age"), NAN))
                workers.add_metric([queue], values.get((queue, "workers"), NAN))
        return [jobs, oldest, workers]

    def _system_metrics(self) -> list[Metric]:
        families = {
            name: GaugeMetricFamily(name, f"{doc} {_FROM_LAST_RUN}", labels=["scope"])
            for name, doc in (
                (
                    "probe_cpu_usage_ratio",
                    "CPU used as a share of the CPU limit (container) or of all CPUs (host).",
                ),
                (
                    "probe_memory_usage_bytes",
                    "Memory in use: the working set for a container, used memory for the host.",
                ),
                (
                    "probe_memory_limit_bytes",
                    "Memory limit: the container's limit, or the host's total memory.",
                ),
                ("probe_memory_usage_ratio", "Memory in use as a share of the limit."),
            )
        }
        # The first system check feeds every series, NaN until measured; on a host with
        # no cgroup the container scope stays NaN (the host scope carries the figures).
        systems = list(self._latest_values("system"))
        if systems:
            values = systems[0][1]
            for key, (metric, scope) in _SYSTEM_SERIES.items():
                families[metric].add_metric([scope], values.get(key, NAN))
        return list(families.values())

    def _latest_values(
        self, check_type: str
    ) -> Iterator[tuple[CheckConfig, dict[tuple[str, str], float]]]:
        """Each check of one type with its latest measured values by (component, measure)."""
        for name in self.store.check_names():
            config = self.store.check_config(name)
            if config.type != check_type:
                continue
            latest = self.store.latest(name)
            observations = latest.observations if latest is not None else ()
            yield (
                config,
                {
                    (o.component, o.measure): float(o.value)
                    for o in observations
                    if o.value is not None and not _host_figure_in_container_series(o)
                },
            )

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
        by_severity = dict.fromkeys(SEVERITIES, 0)
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


# ---------------------------------------------------------------- mapping helpers

# (component, measure) of a system check's observation -> (metric, scope); the names
# are those of probe/checks/system.py.
_SYSTEM_SERIES: dict[tuple[str, str], tuple[str, str]] = {
    ("cpu", "cpu"): ("probe_cpu_usage_ratio", "container"),
    ("cpu", "host_cpu"): ("probe_cpu_usage_ratio", "host"),
    ("memory", "memory"): ("probe_memory_usage_ratio", "container"),
    ("memory", "memory_bytes"): ("probe_memory_usage_bytes", "container"),
    ("memory", "memory_limit_bytes"): ("probe_memory_limit_bytes", "container"),
    ("memory", "host_memory"): ("probe_memory_usage_ratio", "host"),
    ("memory", "host_memory_bytes"): ("probe_memory_usage_bytes", "host"),
    ("memory", "host_memory_limit_bytes"): ("probe_memory_limit_bytes", "host"),
}


def _host_figure_in_container_series(obs: Observation) -> bool:
    """Outside any cgroup a system check's `cpu` and `memory` fall back to host figures,
    which the host scope already carries; they must not pose as the container's."""
    series = _SYSTEM_SERIES.get((obs.component, obs.measure))
    return series is not None and series[1] == "container" and obs.note.startswith(HOST_SOURCE)


def _cumulative_buckets(counts: list[int], total: int) -> list[tuple[str, float]]:
    """The store keeps per-bucket counts; Prometheus wants running totals ending in +Inf."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(DURATION_BUCKETS, counts, strict=True):
        running += count
        buckets.append((repr(float(bound)), float(running)))
    buckets.append(("+Inf", float(total)))
    return buckets
