"""`probe history`: uptime and incidents from the store, for people, without the agent.

Reads what a running agent wrote (SQLite in WAL mode lets it read while the agent
writes) and never changes the store: a file that is missing or unreadable is reported,
not created or moved aside.
"""

from __future__ import annotations

import asyncio
import sys

from probe.contract.config import Config
from probe.core.times import readable_utc
from probe.core.units import format_duration
from probe.engine.history.backends import open_backend
from probe.engine.history.codec import decode_day
from probe.engine.history.model import DAY, HOUR, Rollup, day_of
from probe.engine.history.retention import DAILY_KEEP
from probe.engine.history.rollup import WINDOWS, combine, over_window, uptime, window_hours
from probe.engine.history.store import HistoryError, Snapshot, describe, sqlite_path

MAX_WINDOW = DAILY_KEEP


async def _load(dsn: str, now: float, window: float) -> Snapshot:
    backend = open_backend(dsn, repair=False)
    try:
        await backend.open()
        since = day_of(now - max(window, 90 * DAY))
        return await backend.load(since, day_of(now - MAX_WINDOW), 1000)
    finally:
        await backend.close()


def _hours(snapshot: Snapshot) -> dict[str, dict[int, Rollup]]:
    hours: dict[str, dict[int, Rollup]] = {}
    for _source, check, day, blob in snapshot.days:
        target = hours.setdefault(check, {})
        for h, rollup in decode_day(blob).items():
            at = day + h * HOUR
            target[at] = combine([target[at], rollup]) if at in target else rollup
    return hours


def _share(value: float | None) -> str:
    if value is None:
        return "-"
    return "100%" if value >= 1 else f"{int(value * 10000) / 100:.2f}%"


def _ms(micros: int, runs: int) -> str:
    return f"{micros / 1000:.1f}ms" if runs else "-"


def _window_rollup(
    hours: dict[int, Rollup], daily: dict[int, Rollup], now: float, window: float
) -> Rollup:
    if window <= 90 * DAY:
        return over_window(hours, now, int(window))
    starts = range(day_of(now) - int(window) + DAY, day_of(now) + DAY, DAY)
    return combine(daily[d] for d in starts if d in daily)


def render(
    snapshot: Snapshot, config: Config, now: float, window: float, window_word: str, only: str
) -> str:
    hours = _hours(snapshot)
    daily: dict[str, dict[int, Rollup]] = {}
    for _source, check, day, rollup in snapshot.daily:
        by_day = daily.setdefault(check, {})
        by_day[day] = combine([by_day[day], rollup]) if day in by_day else rollup
    configured = [c.name for c in config.checks]
    names = [n for n in configured if n in hours or n in daily]
    names += sorted(set(hours) - set(configured))
    if only:
        names = [only]
    header = ["check", *WINDOWS, f"runs {window_word}", "fail", "p50", "p95"]
    rows = [header]
    for name in names:
        own = hours.get(name, {})
        total = _window_rollup(own, daily.get(name, {}), now, window)
        rows.append(
            [
                name,
                *(_share(uptime(over_window(own, now, s))) for s in WINDOWS.values()),
                f"{total.runs:,}",
                f"{total.failed:,}",
                _ms(total.p50_us, total.runs),
                _ms(total.p95_us, total.runs),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    start = window_hours(now, int(min(window, 90 * DAY)))[0] if window <= 90 * DAY else now - window
    incidents = [
        i
        for i in snapshot.incidents
        if (not only or i.check == only) and (i.end is None or i.end >= start)
    ]
    lines.append("")
    lines.append(f"incidents in the last {window_word}: {len(incidents) or 'none'}")
    for i in sorted(incidents, key=lambda i: i.start, reverse=True):
        subject = i.check + (f"/{i.component}" if i.component else "")
        lasted = format_duration(i.duration(now))
        state = f"lasted {lasted}" if i.end is not None else f"ongoing for {lasted}"
        lines.append(
            f"  {readable_utc(i.start)}  {i.severity:<8}  {subject} {i.measure}: {i.summary}"
            f"  ({state})"
        )
    return "\n".join(lines)


def main(
    config: Config, source: str, check: str, window: float, window_word: str, now: float
) -> int:
    """0 printed; 1 nothing recorded (yet) for what was asked; 2 history off or unreadable."""
    dsn = config.agent.history.get_secret_value()
    if dsn == "off":
        print(f"{source}: agent.history is off: there is no history to show", file=sys.stderr)
        return 2
    path = sqlite_path(dsn)
    if path is not None and not path.exists():
        print(f"no history yet: {path} does not exist (has the agent run?)", file=sys.stderr)
        return 1
    try:
        snapshot = asyncio.run(_load(dsn, now, window))
    except HistoryError as exc:
        print(f"cannot read history from {describe(dsn)}: {exc}", file=sys.stderr)
        return 2
    known = {c for _, c, _, _ in snapshot.days} | {c for _, c, _, _ in snapshot.daily}
    if check and check not in known:
        print(f"no history for check {check!r} in {describe(dsn)}", file=sys.stderr)
        return 1
    print(f"history from {describe(dsn)}, as of {readable_utc(now)}")
    print(render(snapshot, config, now, window, window_word, check))
    return 0
