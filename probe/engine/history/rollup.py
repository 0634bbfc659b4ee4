"""Pure arithmetic over history: rollups, uptime per window, daily bars.

Uptime is the share of *known* time in pass or warn: an hour or a day with no result
at all is left out of the denominator (and drawn grey), never counted as up or down, and
so is the time of runs inside a maintenance window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from probe.engine.history.model import DAY, HOUR, MAINTENANCE_CODE, Chunk, Rollup, day_of, hour_of

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
        if code == MAINTENANCE_CODE:
            continue
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
    passed = warned = failed = up = known = 0
    p50s: list[tuple[int, int]] = []
    p95s: list[tuple[int, int]] = []
    for part in parts:
        runs = part.passed + part.warned + part.failed
        if not runs:
            continue
        passed += part.passed
        warned += part.warned
        failed += part.failed
        up += part.up_ms
        known += part.known_ms
        p50s.append((part.p50_us, runs))
        p95s.append((part.p95_us, runs))
    if not p50s:
        return Rollup()
    if len(p50s) > 1:
        p50s.sort()
        p95s.sort()
    return Rollup(passed, warned, failed, up, known, _weighted(p50s, 0.5), _weighted(p95s, 0.95))


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
