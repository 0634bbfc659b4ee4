"""What the page, the JSON endpoints and the badges show, computed from memory.

`HistoryView.rebuild()` runs when the status site finds its bodies stale and leaves
plain values (`checks`, `incidents`) and serialised JSON bodies behind; handlers only
pick bytes. Current states come from the results store, everything else from the
writer's in-memory rollups; with history off the view still shows the current states.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from probe.core.incident_notes import Note
from probe.core.maintenance import Window
from probe.core.model import Health, Status
from probe.core.times import Clock, rfc3339_seconds
from probe.engine.health import dumps
from probe.engine.health import overall as health_overall
from probe.engine.history.model import DAY, HOUR, Incident, Rollup, day_of
from probe.engine.history.rollup import (
    WINDOWS,
    combine,
    day_starts,
    over_named_window,
    over_window,
    uptime,
)
from probe.web.settings import LiveSettings
from probe.web.views import CurrentStates, Planner, Rollups

BARS = 90
CHART_HOURS = 7 * 24
EMPTY = Rollup()  # frozen: one for every day and hour with no rollup
PAGE_INCIDENTS = 20
# Windows of /api/v1/checks/<name>/history: hourly points up to a week, daily beyond.
HISTORY_WINDOWS: dict[str, tuple[int, int]] = {
    "24h": (DAY, HOUR),
    "7d": (7 * DAY, HOUR),
    "30d": (30 * DAY, DAY),
    "90d": (90 * DAY, DAY),
    "400d": (400 * DAY, DAY),
}


@dataclass(frozen=True, slots=True)
class CheckSummary:
    name: str
    status: Status | None  # None: no result yet
    output: str
    uptime: dict[str, float | None]  # window -> share of known time up
    own_days: dict[int, Rollup]  # day start -> rollup (the writer's, read when asked)
    own_hours: dict[int, Rollup]
    bar_days: Sequence[int]  # shared by every check of one rebuild
    chart_hours: Sequence[int]
    generation: int = 0  # the writer's: past days and hours are the same while it is
    maintenance_days: frozenset[int] = frozenset()  # bar days a window covering it touched

    # Lists of 90 days and 168 hours per check cost 22 KB a check at every rebuild, for
    # every check, whether or not a page was ever asked for: built when read instead.
    @property
    def days(self) -> list[tuple[int, Rollup]]:
        """The last BARS days, oldest first, today last."""
        return [(d, self.own_days.get(d, EMPTY)) for d in self.bar_days]

    @property
    def chart(self) -> list[tuple[int, Rollup]]:
        """The CHART_HOURS complete hours before this one."""
        return [(h, self.own_hours.get(h, EMPTY)) for h in self.chart_hours]


@dataclass(slots=True)
class Snapshot:
    """One rebuild's worth of values."""

    now: float = 0.0
    agent: str = "probe"
    overall: Health = Health.HEALTHY
    history: str = "off"  # `on`, `off`, or why it is unavailable
    checks: list[CheckSummary] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)  # every listed window, newest first
    notes: dict[str, list[Note]] = field(default_factory=dict)  # incident id -> its notes

    def planned(self) -> list[Window]:
        """Current and upcoming windows, soonest first."""
        return sorted((w for w in self.windows if w.end > self.now), key=lambda w: w.start)


def ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def millis(micros: int) -> float:
    return round(micros / 1000, 3)


def incident_json(incident: Incident, now: float) -> dict[str, Any]:
    return {
        "id": incident.id,
        "check": incident.check,
        "component": incident.component or None,
        "measure": incident.measure or None,
        "severity": incident.severity,
        "summary": incident.summary,
        "start": rfc3339_seconds(incident.start),
        "end": rfc3339_seconds(incident.end) if incident.end is not None else None,
        "duration": int(incident.duration(now)),
    }


def point_json(start: int, rollup: Rollup) -> dict[str, Any]:
    return {
        "start": rfc3339_seconds(start),
        "uptime": ratio(uptime(rollup)),
        "pass": rollup.passed,
        "warn": rollup.warned,
        "fail": rollup.failed,
        "responseTimeP50": millis(rollup.p50_us) if rollup.runs else None,
        "responseTimeP95": millis(rollup.p95_us) if rollup.runs else None,
    }


class HistoryView:
    def __init__(
        self,
        states: CurrentStates,
        writer: Rollups | None,
        settings: LiveSettings,
        clock: Clock = time.time,
        planner: Planner | None = None,
    ) -> None:
        self.states = states
        self.writer = writer
        self.planner = planner
        self.settings = settings
        self.clock = clock
        self.snapshot = Snapshot()
        self.uptime_body = b"{}"
        self.incidents_body = b"{}"
        self._hours: dict[str, dict[int, Rollup]] = {}
        self._days: dict[str, dict[int, Rollup]] = {}
        self._daily: dict[str, dict[int, Rollup]] = {}
        self._past: dict[tuple[str, int, int, int], Rollup] = {}
        self._history_bodies: dict[tuple[str, str], bytes] = {}
        self.rebuild()

    def rebuild(self) -> None:
        for _ in self.rebuilding():
            pass

    def rebuilding(self) -> Iterator[None]:
        """`rebuild` a check at a time: it yields after each one, so a caller on the loop
        can hand it back between slices (thousands of checks are hundreds of ms). The
        new values are put in place together at the end."""
        now = self.clock()
        writer = self.writer
        hours = writer.merged if writer is not None else {}
        days = writer.merged_days if writer is not None else {}
        daily = writer.daily if writer is not None else {}
        entries = {e.config.name: e for e in self.states.entries(now)}
        yield  # thousands of entries: a slice's worth already
        names = list(entries)
        check_hours = {n: hours.get(n, {}) for n in names}
        check_days = {n: days.get(n, {}) for n in names}
        yield
        bar_days = day_starts(now, BARS)
        this_hour = int(now // HOUR) * HOUR
        # Complete hours only: a few minutes of the current hour make a noisy p95.
        chart_hours = range(this_hour - CHART_HOURS * HOUR, this_hour, HOUR)
        generation = writer.generation if writer is not None else 0
        windows = self.planner.windows(now) if self.planner is not None else []
        touched = self._maintenance_days(names, windows, bar_days)
        checks = []
        uptime_json: list[bytes] = []
        for name in names:
            yield
            entry = entries[name]
            own_hours, own_days = check_hours[name], check_days[name]
            known = entry.result is not None
            checks.append(
                CheckSummary(
                    name=name,
                    status=entry.status if known else None,
                    output=entry.output if entry.status is not Status.PASS else "",
                    uptime={
                        w: uptime(self._window(name, own_hours, own_days, now, s, generation))
                        for w, s in WINDOWS.items()
                    },
                    own_days=own_days,
                    own_hours=own_hours,
                    bar_days=bar_days,
                    chart_hours=chart_hours,
                    generation=generation,
                    maintenance_days=touched.get(name, frozenset()),
                )
            )
            made = checks[-1]
            uptime_json.append(
                dumps(
                    {
                        "name": made.name,
                        "status": made.status.value if made.status else None,
                        "uptime": {w: ratio(v) for w, v in made.uptime.items()},
                    }
                )
            )
        yield
        self._daily, self._hours, self._days = daily, check_hours, check_days
        self.snapshot = Snapshot(
            now=now,
            agent=self.settings.current.name,
            # From the entries just read: the store's own would render its bodies at once.
            overall=health_overall(list(entries.values())),
            history=self._history_state(),
            checks=checks,
            incidents=writer.incidents() if writer is not None else [],
            windows=windows,
            notes=self._notes(),
        )
        # The body of `dumps({..., "checks": [...]})`, its checks serialised a check at a
        # time above: one `dumps` of thousands was a slice of its own of 10 ms and more.
        head = dumps({"timestamp": rfc3339_seconds(now), "windows": list(WINDOWS), "checks": []})
        self.uptime_body = head.removesuffix(b"]}") + b",".join(uptime_json) + b"]}"
        self.incidents_body = dumps(
            {
                "timestamp": rfc3339_seconds(now),
                "incidents": [incident_json(i, now) for i in self.snapshot.incidents],
            }
        )
        self._history_bodies = {}

    def _maintenance_days(
        self, names: list[str], windows: list[Window], bar_days: list[int]
    ) -> dict[str, frozenset[int]]:
        """check -> the bar days a window covering it overlapped."""
        if self.planner is None or not windows:
            return {}
        first = bar_days[0]
        found: dict[str, set[int]] = {}
        for window in windows:
            days = [d for d in range(day_of(window.start), int(window.end), DAY) if d >= first]
            if not days:
                continue
            for name in names:
                if self.planner.applies(window, name):
                    found.setdefault(name, set()).update(days)
        return {name: frozenset(days) for name, days in found.items()}

    def _notes(self) -> dict[str, list[Note]]:
        grouped: dict[str, list[Note]] = {}
        for note in self.planner.notes() if self.planner is not None else []:
            grouped.setdefault(note.incident, []).append(note)
        return grouped

    def _window(
        self,
        name: str,
        hours: dict[int, Rollup],
        days: dict[int, Rollup],
        now: float,
        seconds: int,
        generation: int,
    ) -> Rollup:
        """A window's rollup; past days are added up once per day and writer generation."""
        if seconds <= DAY:
            return over_named_window(hours, days, now, seconds)
        today = int(now // DAY) * DAY
        key = (name, seconds, today, generation)
        past = self._past.get(key)
        if past is None:
            if len(self._past) > 4096:
                self._past.clear()
            starts = day_starts(now, seconds // DAY)[:-1]
            past = self._past[key] = combine(days[d] for d in starts if d in days)
        return combine([past, days[today]]) if today in days else past

    def _history_state(self) -> str:
        if self.writer is None:
            return "off"
        if self.writer.available:
            return "on"
        return self.writer.problem or "starting"

    def has_check(self, name: str) -> bool:
        return name in self._hours

    def history_body(self, name: str, window: str) -> bytes:
        """A check's points over a window, rendered once per rebuild.

        Memoised rather than rendered for every check and window at each rebuild: the
        400-day bodies of 50 checks would cost more than everything else together, for
        bodies that are rarely asked for. Still no I/O: it is the rebuild's values.
        """
        key = (name, window)
        found = self._history_bodies.get(key)
        if found is None:
            found = self._history_bodies[key] = self._render_history(name, window)
        return found

    def _render_history(self, name: str, window: str) -> bytes:
        now = self.snapshot.now
        seconds, step = HISTORY_WINDOWS[window]
        last = (int(now // step)) * step
        starts = range(last - seconds + step, last + step, step)
        if step == HOUR:
            hours = self._hours[name]
            found = {s: hours[s] for s in starts if s in hours}
            total = over_window(hours, now, seconds)
        else:
            # Days still in hourly retention come from the hours; older ones from `daily`.
            recent, stored = self._days[name], self._daily.get(name, {})
            found = {s: recent.get(s) or stored[s] for s in starts if s in recent or s in stored}
            total = combine(found.values())
        points = [point_json(s, found.get(s, Rollup())) for s in starts]
        return dumps(
            {
                "name": name,
                "window": window,
                "resolution": "1h" if step == HOUR else "1d",
                "timestamp": rfc3339_seconds(now),
                "uptime": ratio(uptime(total)),
                "points": points,
            }
        )


__all__ = ["BARS", "HISTORY_WINDOWS", "CheckSummary", "HistoryView", "Snapshot", "day_of"]
