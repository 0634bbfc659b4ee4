"""Selectors and rate math for the `prometheus` check: `name{label=~"..."}` matching a
scrape's series, and counter increases that survive resets the way PromQL's rate() does.

No I/O here: the check scrapes, this module reads the text and keeps the windows.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"^\s*({_NAME})\s*(?:\{{(.*)\}})?\s*$", re.DOTALL)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

SeriesKey = str  # a series' name and its labels, sorted


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        # An absent label is the empty string, as in PromQL: `{env!="prod"}` matches it.
        found = labels.get(self.label, "")
        if self.pattern is not None:
            hit = self.pattern.fullmatch(found) is not None
            return hit if self.op == "=~" else not hit
        return (found == self.value) if self.op == "=" else (found != self.value)


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    name: str
    matchers: tuple[Matcher, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


def parse_selector(text: str) -> Selector:
    """`http_requests_total{status=~"5..", route!="/health"}` -> Selector; ValueError
    with words saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(
            f"expected a selector like 'http_requests_total{{status=~\"5..\"}}', got {text!r}"
        )
    found = _SELECTOR.match(text)
    if not found:
        raise ValueError(
            f"expected a selector like 'http_requests_total{{status=~\"5..\"}}', got {text!r}"
        )
    name, body = found.group(1), (found.group(2) or "").strip()
    matchers: list[Matcher] = []
    position = 0
    while position < len(body):
        part = _MATCHER.match(body, position)
        if not part or part.end() == position:
            raise ValueError(
                f"bad label matcher {body[position:].strip()!r} in {text!r} "
                '(expected label="value", !=, =~ or !~)'
            )
        label, op, raw = part.group(1), part.group(2), part.group(3)
        value = re.sub(r"\\.", lambda m: _ESCAPES.get(m.group(0), m.group(0)), raw)
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regular expression {value!r} for {label}: {exc}") from None
        matchers.append(Matcher(label, op, value, pattern))
        position = part.end()
    return Selector(text.strip(), name, tuple(matchers))


# ---------------------------------------------------------------- scrape text


@dataclass(slots=True)
class Scrape:
    """The series of one scrape that any selector asks for, by sample name."""

    # sample name -> (series key: its `name{labels}` text, labels, value) per line
    series: dict[str, list[tuple[SeriesKey, dict[str, str], float]]] = field(default_factory=dict)
    seen: int = 0  # every sample line of the scrape, wanted or not
    # NaN and +-Inf samples of wanted names: absent from `series`, counted for the notes
    odd: dict[str, list[tuple[SeriesKey, dict[str, str], float]]] = field(default_factory=dict)
    # (selector text, series key) -> whether it matches: shared across scrapes by the parser
    verdicts: dict[tuple[str, SeriesKey], bool] = field(default_factory=dict)

    def matching(self, selector: Selector) -> list[tuple[SeriesKey, float]]:
        return self._matching(selector, self.series)

    def non_finite(self, selector: Selector) -> list[tuple[SeriesKey, float]]:
        """The selector's samples of this scrape that were NaN or +-Inf (left out)."""
        return self._matching(selector, self.odd)

    def _matching(
        self,
        selector: Selector,
        lines: dict[str, list[tuple[SeriesKey, dict[str, str], float]]],
    ) -> list[tuple[SeriesKey, float]]:
        found = []
        verdicts, text = self.verdicts, selector.text
        for key, labels, value in lines.get(selector.name, ()):
            hit = verdicts.get((text, key))
            if hit is None:
                hit = verdicts[(text, key)] = selector.matches(labels)
            if hit:
                found.append((key, value))
        return found


class ScrapeParser:
    """Reads the samples named in `wanted` out of exposition text (Prometheus text or
    OpenMetrics: their sample lines share one syntax).

    Lines of other metrics are counted and skipped before any parsing. Label sets are
    parsed by `prometheus_client.parser` once and remembered by their text: between two
    scrapes only the values change, and the parser costs ~40us a line.
    """

    def __init__(self, wanted: frozenset[str]) -> None:
        self.wanted = wanted
        # line text up to the value -> (series key with labels sorted, labels)
        self._labels: dict[str, tuple[SeriesKey, dict[str, str]]] = {}
        self._verdicts: dict[tuple[str, SeriesKey], bool] = {}

    def parse(self, text: str) -> Scrape:
        """ValueError (with the line number) when the text is not exposition text."""
        if len(self._verdicts) >= 4 * MAX_LABEL_SETS:
            self._verdicts.clear()
        scrape = Scrape(verdicts=self._verdicts)
        wanted, series = self.wanted, scrape.series
        for number, line in enumerate(text.splitlines(), 1):
            if not line or line[0] == "#":
                continue
            scrape.seen += 1
            found = _LINE.match(line)
            if found is None:
                raise ValueError(f"not Prometheus text: line {number} reads {_shown(line)}")
            name = found.group(1)
            if name not in wanted:
                continue
            try:
                key, labels, value = self._sample(line, name)
            except (ValueError, IndexError):
                raise ValueError(
                    f"not Prometheus text: line {number} reads {_shown(line)}"
                ) from None
            # One NaN or +Inf in a window's sums would poison every rate until a restart
            # (and no comparison with NaN ever reads as a reset): such a sample is absent
            # from this scrape, so the series' last finite value stays its last value.
            lines = series if math.isfinite(value) else scrape.odd
            lines.setdefault(name, []).append((key, labels, value))
        return scrape

    def _sample(self, line: str, name: str) -> tuple[str, dict[str, str], float]:
        if line[len(name)] == "{":
            end = line.rindex("}") + 1
            key, rest = line[:end], line[end:]
        else:
            key, rest = name, line[len(name) :]
        value = float(rest.split()[0])
        known = self._labels.get(key)
        if known is None:
            labels = _parse_labels(key)
            # Sorted, so an exporter that prints labels in another order is the same series.
            canonical = name + repr(sorted(labels.items()))
            if len(self._labels) >= MAX_LABEL_SETS:
                self._labels.clear()  # a scrape churning label sets: start over, stay bounded
            known = self._labels[key] = (canonical, labels)
        return known[0], known[1], value


MAX_LABEL_SETS = 50_000
_LINE = re.compile(rf"({_NAME})(?:\{{|[ \t])")


def _parse_labels(key: str) -> dict[str, str]:
    try:
        for family in text_string_to_metric_families(f"{key} 0\n"):
            for sample in family.samples:
                return dict(sample.labels)
    except (ValueError, TypeError, KeyError, IndexError):
        pass
    raise ValueError(key)


def _shown(line: str) -> str:
    return repr(line[:40] + ("..." if len(line) > 40 else ""))


# ---------------------------------------------------------------- counter windows


MAX_SERIES = 10_000  # series followed one by one per selector; the rest are summed as one


@dataclass(slots=True)
class CounterWindow:
    """The increase of the sum of a selector's series, kept per scrape time.

    Each series' increase is counted on its own, so one series resetting (a replica
    restarting) does not read as a drop of the sum: a value lower than the last one is a
    reset, and the whole new value is the increase since, as rate() reads it. A series
    first seen after the first scrape started at 0 since then (prom-client creates the
    `status="500"` series with the first 500). `total` only grows, so no rate is negative.

    At most MAX_SERIES series are followed one by one: a label holding a request or user
    id makes new series on every scrape, and following each for the whole window grew
    without bound. When a new series finds no room, the series this scrape did not have
    are forgotten first; what still does not fit is summed into one `other` series.
    """

    keep: float  # seconds of points to keep: the longest span asked of this window
    total: float = 0.0
    points: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=100_000))
    last: dict[SeriesKey, tuple[float, float]] = field(default_factory=dict)  # value, seen at
    scrapes: int = 0
    other: float | None = None  # the sum of the series not followed, at the last scrape
    limited_at: float | None = None  # the last scrape that had more series than MAX_SERIES

    def add(self, at: float, series: Iterable[tuple[SeriesKey, float]]) -> None:
        increase = 0.0
        last, fresh = self.last, []
        for key, value in series:
            before = last.get(key)
            if before is None:
                fresh.append((key, value))
                continue
            increase += value - before[0] if value >= before[0] else value
            last[key] = (value, at)
        horizon = at - self.keep
        # A series gone longer than the window is forgotten; if it comes back, it came
        # back from 0 (a restarted process), which is what it is then counted from.
        stale = [k for k, (_, seen) in last.items() if seen < horizon]
        if len(last) - len(stale) + len(fresh) > MAX_SERIES:
            stale = [k for k, (_, seen) in last.items() if seen < at]
        for key in stale:
            del last[key]
        room = max(0, MAX_SERIES - len(last))
        for key, value in fresh[:room]:
            increase += value if self.scrapes else 0.0
            last[key] = (value, at)
        other = None
        if len(fresh) > room:
            other = math.fsum(value for _, value in fresh[room:])
            self.limited_at = at
            before_other = self.other
            if before_other is None:
                increase += other if self.scrapes else 0.0
            else:
                increase += other - before_other if other >= before_other else other
        self.other = other
        self.scrapes += 1
        self.total += increase
        self.points.append((at, self.total))
        # Keep one point at or before the horizon: it is where the longest span starts.
        while len(self.points) > 1 and self.points[1][0] <= horizon:
            self.points.popleft()

    def limited(self, at: float, span: float) -> bool:
        """Whether some scrape within `span` had more series than are followed."""
        return self.limited_at is not None and self.limited_at > at - span

    def covered(self, at: float) -> float:
        """Seconds of history behind `at`."""
        return at - self.points[0][0] if self.points else 0.0

    def _start_of(self, at: float, span: float) -> tuple[float, float] | None:
        """The last point at or before `at - span`, None before `span` is covered."""
        if not self.points or self.covered(at) < span:
            return None
        start = self.points[0]
        for point in self.points:
            if point[0] > at - span:
                break
            start = point
        return start

    def increase(self, at: float, span: float) -> float | None:
        """The increase over the last `span` seconds, None before `span` is covered."""
        start = self._start_of(at, span)
        return None if start is None else self.total - start[1]

    def rate(self, at: float, span: float) -> float | None:
        """Per second over exactly the measured span (from the point that starts it)."""
        start = self._start_of(at, span)
        if start is None or at <= start[0]:
            return None
        return (self.total - start[1]) / (at - start[0])
