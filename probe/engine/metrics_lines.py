"""The per-check /metrics families as exposition text, formatted on the loop in slices.

At 3,000 `http` checks /metrics holds about 260,000 series. Copying them for a worker
thread held the loop for the copy, and the thread's formatting took the GIL from the loop
for a second or more per scrape. Here each check's lines are written straight from the
store, a few hundred checks at a time, and the loop is handed back between slices: a
scrape never holds it for longer than one slice.

The lines are those prometheus_client writes for the same families (`tests/test_scale_metrics`
compares the two byte for byte): label names sorted, values through its
`floatToGoString`. A sample line reads the same in the text format and in OpenMetrics; only
the `# HELP`/`# TYPE` headers differ, and those are still written by prometheus_client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client.utils import floatToGoString

from probe.contract.plugin import MetricFamily, MetricPoint
from probe.core.model import Observation, Status
from probe.engine.store import DURATION_BUCKETS, Observed, ResultStore

# The loop is handed back once a slice has run this long: a request waiting on the loop
# (/live) waits behind one slice per step of its handling, and a scrape may hold it for
# no more than 20 ms; the hand-backs (about 20 µs each) cost nothing measurable.
SLICE_SECONDS = 0.002
STATUSES = tuple(Status)
_DURATION_LE = tuple(repr(float(bound)) for bound in DURATION_BUCKETS)


_num: Callable[[float], str] = floatToGoString
Kind = Literal["gauge", "counter", "histogram"]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    """`a="x",b="y"`, sorted by label name as prometheus_client writes them."""
    pairs = sorted(zip(names, values, strict=True))
    return ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)


def _count(value: int) -> str:
    """floatToGoString(value) for a count, without its float round trip below a million
    (where Go, and so prometheus_client, switch to `1e+06`)."""
    return f"{value}.0" if 0 <= value < 1_000_000 else _num(value)


@dataclass(frozen=True, slots=True)
class _Series:
    """One configured series, its label text written once: a scrape then appends values.

    Writing the labels on every scrape made about a hundred short-lived objects per
    `http` check (zips, sorted pairs, lists); at thousands of checks they kept the garbage
    collector busy while a scrape ran, and in-flight check runs were promoted into the
    oldest generation, whose full collections held the loop for 20-40 ms.
    """

    point: MetricPoint
    key: tuple[str, str, tuple[str, ...]]  # dedup: two checks feeding one series
    family: tuple[str, Kind]  # (name, kind)
    line: str  # a gauge's or counter's `name{labels} `; a histogram's `name_bucket{...le=`
    tail: str = ""  # a histogram's labels after `le`, with the closing brace
    count: str = ""  # a histogram's `name_count{labels} `
    total: str = ""  # a histogram's `name_sum{labels} `

    @classmethod
    def of(cls, point: MetricPoint) -> _Series:
        family = point.family
        key = (family.name, family.kind, point.labels)
        names, values = family.labels, point.labels
        if family.kind == "histogram":
            # The `le` label's place among the sorted names is the same on every bucket line.
            head, tail = _labels([*names, "le"], [*values, "\x00"]).split('"\x00"')
            plain = _labels(names, values)
            return cls(
                point,
                key,
                (family.name, family.kind),
                f"{family.name}_bucket{{{head}",
                f"{tail}}} ",
                f"{family.name}_count{{{plain}}} ",
                f"{family.name}_sum{{{plain}}} ",
            )
        sample = f"{family.name}_total" if family.kind == "counter" else family.name
        labels = _labels(names, values)
        braced = f"{{{labels}}}" if labels else ""
        return cls(point, key, (family.name, family.kind), f"{sample}{braced} ")


class SeriesCache:
    """Each check's `_Series`, kept across scrapes (by the registry) until its config goes.

    Keyed by the store's tuple of the check's points, which lives as long as the check's
    config: a reload makes new tuples, and the old entries are dropped once they outnumber
    the live ones.
    """

    def __init__(self) -> None:
        self._by_points: dict[int, tuple[tuple[MetricPoint, ...], tuple[_Series, ...]]] = {}

    def series(self, points: tuple[MetricPoint, ...]) -> tuple[_Series, ...]:
        found = self._by_points.get(id(points))
        if found is not None and found[0] is points:
            return found[1]
        made = tuple(_Series.of(point) for point in points)
        self._by_points[id(points)] = (points, made)
        return made

    def trim(self, live: int) -> None:
        """Forget every entry when there are more than twice `live` (after reloads)."""
        if len(self._by_points) > 2 * live:
            self._by_points.clear()


class CheckLines:
    """The sample lines of the per-check families, in the order `StoreCollector` adds them.

    `families` are the configured check types' families (plugin families), in the order
    the collector declares them; the five `probe_check_*` families always come first.
    """

    CHECK_FAMILIES = 5

    def __init__(
        self,
        store: ResultStore,
        families: Sequence[MetricFamily],
        cache: SeriesCache | None = None,
    ) -> None:
        self.store = store
        self.cache = SeriesCache() if cache is None else cache
        self.families = list(families)
        self._index = {(f.name, f.kind): i for i, f in enumerate(self.families)}
        self._les = {
            i: tuple(repr(float(b)) for b in f.buckets)
            for i, f in enumerate(self.families)
            if f.kind == "histogram"
        }

    async def render(self) -> list[list[bytes]]:
        """Per family, its lines in slices of bytes; the loop is handed back between slices."""
        count = self.CHECK_FAMILIES + len(self.families)
        done: list[list[bytes]] = [[] for _ in range(count)]
        pending: list[list[str]] = [[] for _ in range(count)]
        seen: set[tuple[str, str, tuple[str, ...]]] = set()
        names = self.store.check_names()
        self.cache.trim(len(names))
        started = time.perf_counter()
        for name in names:
            try:
                self._check(name, pending, seen)
            except KeyError:  # removed by a reload while an earlier slice was out
                continue
            if time.perf_counter() - started > SLICE_SECONDS:
                _flush(pending, done)
                await asyncio.sleep(0)
                started = time.perf_counter()
        _flush(pending, done)
        return done

    def _check(
        self, name: str, out: list[list[str]], seen: set[tuple[str, str, tuple[str, ...]]]
    ) -> None:
        store = self.store
        current = store.effective_status(name)
        latest = store.latest(name)
        stats = store.stats(name)
        check = f'check="{_escape(name)}"'
        up = 1.0 if latest is not None and current is not Status.FAIL else 0.0
        out[0].append(f"probe_check_up{{{check}}} {up!r}\n")
        for each in STATUSES:
            on = 1.0 if each is current else 0.0
            out[1].append(f'probe_check_status{{{check},status="{each.value}"}} {on!r}\n')
        duration = out[2]
        running = 0
        bucket = f"probe_check_duration_seconds_bucket{{{check},le="
        for le, count in zip(_DURATION_LE, stats.bucket_counts, strict=True):
            running += count
            duration.append(f'{bucket}"{le}"}} {_count(running)}\n')
        total = _count(stats.duration_count)
        duration.append(f'{bucket}"+Inf"}} {total}\n')
        duration.append(f"probe_check_duration_seconds_count{{{check}}} {total}\n")
        duration.append(f"probe_check_duration_seconds_sum{{{check}}} {_num(stats.duration_sum)}\n")
        for each in STATUSES:
            runs = _count(stats.runs.get(each, 0))
            out[3].append(f'probe_check_runs_total{{{check},status="{each.value}"}} {runs}\n')
        last = latest.observed_at if latest is not None else 0.0
        out[4].append(f"probe_check_last_run_timestamp_seconds{{{check}}} {_num(last)}\n")
        values: dict[tuple[str, str], Observation] | None = None
        for series in self.cache.series(store.metric_points(name)):
            if series.key in seen:
                continue
            seen.add(series.key)
            index = self._index.get(series.family)
            if index is None:
                continue
            lines = out[self.CHECK_FAMILIES + index]
            point = series.point
            if series.tail:  # a histogram
                observed: Observed | None = stats.observed.get((point.family.name, point.labels))
                cumulative = 0
                if observed is not None:
                    for le, step in zip(self._les[index], observed.bucket_counts, strict=True):
                        cumulative += step
                        lines.append(f'{series.line}"{le}"{series.tail}{_count(cumulative)}\n')
                    seen_count, seen_sum = observed.count, observed.total
                else:
                    for le in self._les[index]:
                        lines.append(f'{series.line}"{le}"{series.tail}0.0\n')
                    seen_count, seen_sum = 0, 0.0
                lines.append(f'{series.line}"+Inf"{series.tail}{_count(seen_count)}\n')
                lines.append(f"{series.count}{_count(seen_count)}\n")
                lines.append(f"{series.total}{_num(seen_sum)}\n")
                continue
            if values is None:
                values = {
                    (o.component, o.measure): o
                    for o in (latest.observations if latest is not None else ())
                    if o.value is not None
                }
            found = values.get((point.component, point.measure))
            value = float("nan")
            skipped = (
                found is not None and point.skip_note and found.note.startswith(point.skip_note)
            )
            if found is not None and found.value is not None and not skipped:
                value = float(found.value)
            lines.append(f"{series.line}{_num(value)}\n")


def _flush(pending: list[list[str]], done: list[list[bytes]]) -> None:
    for lines, into in zip(pending, done, strict=True):
        if lines:
            into.append("".join(lines).encode())
            lines.clear()
