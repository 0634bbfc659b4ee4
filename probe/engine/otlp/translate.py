"""prometheus_client metric families -> the OpenTelemetry SDK's metrics data model.

The mapping is OpenTelemetry's "Prometheus and OpenMetrics compatibility" one, Prometheus
to OTLP: the metric keeps the name `/metrics` shows (`_total` included: the spec says not
to alter it by default), HELP becomes the description, a counter becomes a cumulative
monotonic Sum, a gauge a Gauge, a histogram an explicit-bucket Histogram whose bucket
counts are per bucket, not running totals. The unit comes from the name's unit suffix in
UCUM (`_seconds` -> `s`, `_bytes` -> `By`, `_ratio` -> `1`): a backend that maps OTLP
back to Prometheus (Grafana Cloud, Prometheus's OTLP receiver) finds that unit already in
the name and adds no suffix, so the series keep their /metrics names there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import cast

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.samples import Sample

# Prometheus base units (name suffixes) -> UCUM, as OpenTelemetry writes units.
UNITS = {"seconds": "s", "bytes": "By", "ratio": "1"}
CUMULATIVE = AggregationTemporality.CUMULATIVE


def metrics_data(
    families: Iterable[Family],
    resource: Resource,
    scope: InstrumentationScope,
    start_ns: int,
    now_ns: int,
) -> MetricsData:
    """One request's worth: every family that has an OTLP shape, under one resource."""
    metrics = [m for f in families if (m := to_metric(f, start_ns, now_ns)) is not None]
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, metrics, "")], "")])


def to_metric(family: Family, start_ns: int, now_ns: int) -> Metric | None:
    """None for a family with no series, and for the types OTLP or the SDK's model has no
    place for (gaugehistogram, summary): none of probe's families is one."""
    kind = family.type
    if kind == "counter":
        name = f"{family.name}_total"
        points = _numbers(family.samples, name, start_ns, now_ns)
        data: Sum | Gauge | Histogram = Sum(points, CUMULATIVE, is_monotonic=True)
    elif kind in ("gauge", "unknown"):
        name = family.name
        data = Gauge(_numbers(family.samples, name, 0, now_ns))
    elif kind in ("info", "stateset"):
        # A count meant to be summed across labels: a non-monotonic Sum, says the spec.
        name = f"{family.name}_info" if kind == "info" else family.name
        data = Sum(_numbers(family.samples, name, start_ns, now_ns), CUMULATIVE, False)
    elif kind == "histogram":
        name = family.name
        data = Histogram(_histogram_points(family, start_ns, now_ns), CUMULATIVE)
    else:
        return None
    if not data.data_points:
        return None  # an OTLP metric must carry data: a family with no series yet is left out
    return Metric(name, family.documentation, unit_of(family), data)


def unit_of(family: Family) -> str:
    """The family's UNIT when it declares one, else its name's unit suffix, in UCUM."""
    words = family.unit or family.name.rsplit("_", 1)[-1]
    return UNITS.get(words, "")


def _numbers(
    samples: Sequence[Sample], name: str, start_ns: int, now_ns: int
) -> list[NumberDataPoint]:
    # A counter's `_created` samples are not values of the counter itself.
    return [
        NumberDataPoint(dict(s.labels), start_ns, now_ns, float(s.value))
        for s in samples
        if s.name == name
    ]


def _histogram_points(family: Family, start_ns: int, now_ns: int) -> list[HistogramDataPoint]:
    # Samples of one series share their labels but `le`; Prometheus buckets are running
    # totals, OTLP's are per bucket.
    buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    sums: dict[tuple[tuple[str, str], ...], float] = {}
    for sample in family.samples:
        labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        suffix = sample.name.removeprefix(family.name)
        if suffix == "_bucket":
            buckets.setdefault(labels, []).append((float(sample.labels["le"]), sample.value))
        elif suffix == "_count":
            counts[labels] = sample.value
        elif suffix == "_sum":
            sums[labels] = sample.value
    points = []
    for labels, count in counts.items():  # no `_count`, no histogram (the spec's rule)
        ordered = sorted(buckets.get(labels, []))
        bounds = [bound for bound, _ in ordered if not math.isinf(bound)]
        per_bucket, previous = [], 0.0
        for _, running in ordered:
            per_bucket.append(round(running - previous))
            previous = running
        if not ordered or not math.isinf(ordered[-1][0]):
            per_bucket.append(round(count - previous))  # the implicit +Inf bucket
        points.append(
            HistogramDataPoint(
                attributes=dict(labels),
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                count=round(count),
                sum=cast(float, sums.get(labels)),  # unset without `_sum`, as the spec says
                bucket_counts=per_bucket,
                explicit_bounds=bounds,
                # Not known from a Prometheus histogram: left out of the request (the
                # protobuf fields are optional), never made up.
                min=cast(float, None),
                max=cast(float, None),
            )
        )
    return points
