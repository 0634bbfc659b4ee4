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

from prometheus_client.utils import floatToGoString

from probe.contract.plugin import MetricFamily
from probe.core.model import Observation, Status
from probe.engine.store import DURATION_BUCKETS, Observed, ResultStore

# The loop is handed back once a slice has run this long: a request waiting on the loop
# (/live) waits behind one slice per step of its handling, of each sliced job running
# (a scrape, a /health render, a /status rebuild), and must be answered within 20 ms.
# The hand-backs (about 20 µs each) cost a few percent of a scrape's CPU.
SLICE_SECONDS = 0.001
STATUSES = tuple(Status)
_DURATION_LE = tuple(repr(float(bound)) for bound in DURATION_BUCKETS)


_num: Callable[[float], str] = floatToGoString


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


def _buckets(
    out: list[str],
    name: str,
    names: Sequence[str],
    values: Sequence[str],
    les: Sequence[str],
    counts: Sequence[int],
    total: float,
    count: int,
) -> None:
    """A histogram's `_bucket` lines (running totals, then +Inf), `_count` and `_sum`."""
    # The `le` label's place among the sorted names is the same on every bucket line.
    head, tail = _labels([*names, "le"], [*values, "\x00"]).split('"\x00"')
    bucket = f"{name}_bucket{{{head}"
    running = 0
    for le, each in zip(les, counts, strict=True):
        running += each
        out.append(f'{bucket}"{le}"{tail}}} {_count(running)}\n')
    out.append(f'{bucket}"+Inf"{tail}}} {_count(count)}\n')
    plain = _labels(names, values)
    out.append(f"{name}_count{{{plain}}} {_count(count)}\n")
    out.append(f"{name}_sum{{{plain}}} {_num(total)}\n")


class CheckLines:
    """The sample lines of the per-check families, in the order `StoreCollector` adds them.

    `families` are the configured check types' families (plugin families), in the order
    the collector declares them; the five `probe_check_*` families always come first.
    """

    CHECK_FAMILIES = 5

    def __init__(self, store: ResultStore, families: Sequence[MetricFamily]) -> None:
        self.store = store
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
        # Per family, the label values written so far: the store's own tuples, so marking
        # a series seen makes no object (a tuple per series made thousands each scrape,
        # alive until its end, which pushed in-flight check runs into the collector's
        # oldest generation and its 20-40 ms full collections).
        seen: list[set[tuple[str, ...]]] = [set() for _ in self.families]
        started = time.perf_counter()
        for name in self.store.check_names():
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

    def _check(self, name: str, out: list[list[str]], seen: list[set[tuple[str, ...]]]) -> None:
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
        for point in store.metric_points(name):
            family = point.family
            index = self._index.get((family.name, family.kind))
            if index is None:
                continue
            written = seen[index]
            if point.labels in written:
                continue
            written.add(point.labels)
            lines = out[self.CHECK_FAMILIES + index]
            if family.kind == "histogram":
                observed: Observed | None = stats.observed.get((family.name, point.labels))
                les = self._les[index]
                counts = observed.bucket_counts if observed else [0] * len(les)
                _buckets(
                    lines,
                    family.name,
                    family.labels,
                    point.labels,
                    les,
                    counts,
                    observed.total if observed else 0.0,
                    observed.count if observed else 0,
                )
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
            sample = f"{family.name}_total" if family.kind == "counter" else family.name
            labels = _labels(family.labels, point.labels)
            braced = f"{{{labels}}}" if labels else ""
            lines.append(f"{sample}{braced} {_num(value)}\n")


def _flush(pending: list[list[str]], done: list[list[bytes]]) -> None:
    for lines, into in zip(pending, done, strict=True):
        if lines:
            into.append("".join(lines).encode())
            lines.clear()
