"""Pure arithmetic over history: rollups, uptime per window, daily bars.

Uptime is the share of *known* time in pass or warn: an hour or a day with no result
at all is left out of the denominator (and drawn grey), never counted as up or down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from probe.history.model import DAY, HOUR, Chunk, Rollup, day_of, hour_of

UP_CODES = (0, 1)  # pass, warn
WINDOWS: dict[str, int] = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "90d": 90 * DAY}


def percentile(sorted_values: list[int], share: float) -> int:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def rollup_chunk(chunk: Chunk) -> Rollup:
    counts = [0, 0, 0]
    up = known = 0
    for code, weight in zip(chunk.status, chunk.weight_ms, strict=True):
        counts[code] += 1
        known += weight
        if code in UP_CODES:
            up += weight
    times = sorted(chunk.rt_us)
    return Rollup(
        counts[0], counts[1], counts[2], up, known, percentile(times, 0.5), percentile(times, 0.95)
    )


def combine(parts: Iterable[Rollup]) -> Rollup:
    """Several rollups as one: counts and times add up exactly.

    Latency cannot be combined exactly from percentiles; the run-weighted median of the
    parts' p50 and the run-weighted 95th percentile of their p95 are close for steady
    checks and never hide a slow part entirely.
    """
    items = [p for p in parts if p.runs]
    if not items:
        return Rollup()
    p50s = sorted((p.p50_us, p.runs) for p in items)
    p95s = sorted((p.p95_us, p.runs) for p in items)
    return Rollup(
        sum(p.passed for p in items),
        sum(p.warned for p in items),
        sum(p.failed for p in items),
        sum(p.up_ms for p in items),
        sum(p.known_ms for p in items),
        _weighted(p50s, 0.5),
        _weighted(p95s, 0.95),
    )


def _weighted(pairs: list[tuple[int, int]], share: float) -> int:
    total = sum(w for _, w in pairs)
    target = share * total
    seen = 0
    for value, weight in pairs:
        seen += weight
        if seen >= target:
            return value
    return pairs[-1][0]


def uptime(rollup: Rollup) -> float | None:
    """The share of known time up, or None when nothing is known."""
    return rollup.up_ms / rollup.known_ms if rollup.known_ms else None


def window_hours(now: float, seconds: int) -> range:
    """Starts of the hours of a window ending now: the current hour and the ones before."""
    last = hour_of(now)
    return range(last - seconds + HOUR, last + HOUR, HOUR)


def over_window(hours: Mapping[int, Rollup], now: float, seconds: int) -> Rollup:
    return combine(hours[h] for h in window_hours(now, seconds) if h in hours)


def over_named_window(
    hours: Mapping[int, Rollup], days: Mapping[int, Rollup], now: float, seconds: int
) -> Rollup:
    """A window of a day or less counts whole hours back from now; longer ones count UTC
    days, today included (`7d` is today and the six days before): days are what the bars
    show, and they cost 90 lookups instead of 2,160."""
    if seconds <= DAY:
        return over_window(hours, now, seconds)
    return combine(days[d] for d in day_starts(now, seconds // DAY) if d in days)


def by_day(hours: Mapping[int, Rollup]) -> dict[int, Rollup]:
    days: dict[int, list[Rollup]] = {}
    for hour, rollup in hours.items():
        days.setdefault(day_of(hour), []).append(rollup)
    return {day: combine(parts) for day, parts in days.items()}


def day_starts(now: float, count: int) -> list[int]:
    """The last `count` UTC days, oldest first, today last."""
    today = day_of(now)
    return [today - (count - 1 - i) * DAY for i in range(count)]
