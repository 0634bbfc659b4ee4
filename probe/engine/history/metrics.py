"""`probe_history_*`: what an operator needs to see that history is not being kept."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from probe.engine.history.writer import HistoryWriter

_AS_OF = "As of the history writer's last batch (about once a second), not the scrape."


class HistoryCollector(Collector):
    def __init__(self, writer: HistoryWriter) -> None:
        self.writer = writer

    def collect(self) -> Iterable[Metric]:
        w = self.writer
        up = GaugeMetricFamily(
            "probe_history_up", f"1 when the last history write succeeded. {_AS_OF}"
        )
        up.add_metric([], 1.0 if w.available else 0.0)
        writes = CounterMetricFamily(
            "probe_history_writes",
            f"History batches by result (ok, failed). {_AS_OF}",
            labels=["result"],
        )
        writes.add_metric(["ok"], float(w.writes_ok))
        writes.add_metric(["failed"], float(w.writes_failed))
        pending = GaugeMetricFamily(
            "probe_history_pending",
            f"Results and alerts held in memory, not yet written. {_AS_OF}",
        )
        pending.add_metric([], float(w.pending_count))
        dropped = CounterMetricFamily(
            "probe_history_dropped",
            f"Results and alerts given up on after the store stayed unavailable. {_AS_OF}",
        )
        dropped.add_metric([], float(w.dropped))
        return [up, writes, pending, dropped]
