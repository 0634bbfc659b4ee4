"""Maintenance windows: planned work that makes no noise and costs no uptime.

A window covers some checks (all when it names none) from `start` to `end`. Windows come
from the config (one-off, or recurring by cron in a time zone with a duration) and from
the admin API at run time. Inside a window checks still run and are recorded; the alert
engine sends nothing for covered checks (as for a silence: an alert that begins and ends
inside sends nothing, one that outlasts the window fires when it ends, one already firing
is not resolved by the window), `/health` entries say `"maintenance": true`, and uptime
leaves the time out as it does unknown time.

A window on a check covers the members of a group it names and, transitively, every
check that `depends_on` a covered check: planned work on Redis must not page for the
queues that need it.

Recurring windows keep their local start time across daylight-saving changes (cron in
`tz`); their duration is real elapsed time.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from probe.core.fields import Duration, StrictModel, TimeZone

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

DAY = 86400.0
UPCOMING = 7 * DAY  # how far ahead recurring windows are listed
KEEP_ENDED = 90 * DAY  # ended windows stay listed (page bars, feed) this long
MAX_RUNTIME_WINDOWS = 200  # a deploy script in a loop must not grow the state file forever
MAX_OCCURRENCES = 500  # per recurring entry and listing: `* * * * *` is not a schedule
MAX_DURATION = 31 * DAY
MAX_REASON = 500

Origin = Literal["config", "api"]


def _crontab(value: str, zone: str = "UTC") -> CronTrigger:
    # APScheduler (and tzlocal) is imported by a config with a recurring window only.
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(value, timezone=ZoneInfo(zone))


class WindowConfig(StrictModel):
    """One `maintenance:` entry: `{checks, start, end}` or `{checks, cron, duration, tz}`."""

    checks: list[str] = Field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration: Duration | None = None
    tz: TimeZone = "UTC"
    reason: str = Field(default="", max_length=MAX_REASON)

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _crontab(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"expected five cron fields like '0 2 * * sun', got {value!r} ({exc})"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> WindowConfig:
        once = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if once == recurring:
            raise ValueError("give either start and end (one-off) or cron and duration (recurring)")
        if once:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError("start and end need a timezone, e.g. 2026-12-01T02:00:00Z")
            if self.end <= self.start:
                raise ValueError("end must be after start")
        else:
            if self.cron is None or self.duration is None:
                raise ValueError("a recurring window needs both cron and duration")
            if not 0 < self.duration <= MAX_DURATION:
                raise ValueError("duration must be more than 0 and at most 31d")
        return self


@dataclass(frozen=True, slots=True)
class Window:
    """One occurrence of planned work, in unix seconds."""

    id: str
    checks: tuple[str, ...]  # () = every check
    start: float
    end: float
    reason: str = ""
    origin: Origin = "config"
    closed: bool = False  # a run-time window ended early by `DELETE`

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = list(self.checks)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        checks = data.get("checks", [])
        if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
            raise ValueError("checks must be a list of names")
        start, end = float(data["start"]), float(data["end"])
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError("start and end must be finite, end not before start")
        return cls(
            id=str(data["id"])[:64],
            checks=tuple(checks),
            start=start,
            end=end,
            reason=str(data.get("reason", ""))[:MAX_REASON],
            origin="api",
            closed=bool(data.get("closed", False)),
        )


def occurrences(index: int, entry: WindowConfig, since: float, until: float) -> list[Window]:
    """The windows of config entry `index` that overlap [since, until), oldest first.

    Ids are stable across restarts (`config-<index>-<start>`), so a feed reader sees one
    entry per occurrence.
    """
    checks = tuple(entry.checks)
    if entry.start is not None and entry.end is not None:
        start, end = entry.start.timestamp(), entry.end.timestamp()
        if end <= since or start >= until:
            return []
        return [Window(f"config-{index}", checks, start, end, entry.reason)]
    assert entry.cron is not None and entry.duration is not None
    zone = ZoneInfo(entry.tz)
    trigger = _crontab(entry.cron, entry.tz)
    found: list[Window] = []
    # A window that started up to `duration` ago may still be open.
    cursor = datetime.fromtimestamp(since - entry.duration, zone)
    previous: datetime | None = None
    while len(found) < MAX_OCCURRENCES:
        fire = trigger.get_next_fire_time(previous, cursor)
        if fire is None or fire.timestamp() >= until:
            break
        start = fire.timestamp()
        end = start + entry.duration
        if end > since:
            found.append(Window(f"config-{index}-{int(start)}", checks, start, end, entry.reason))
        previous = fire
        # CronTrigger counts `cursor` itself as a fire time: step past this one.
        cursor = datetime.fromtimestamp(start + 1, zone)
    return found


def new_window(checks: Iterable[str], duration: float, reason: str, now: float) -> Window:
    """A run-time window opened now (`POST /api/v1/maintenance`)."""
    return Window(
        id=uuid.uuid4().hex[:12],
        checks=tuple(checks),
        start=now,
        end=now + duration,
        reason=reason[:MAX_REASON],
        origin="api",
    )


def closed_at(window: Window, now: float) -> Window:
    """`window` ended early at `now` (`DELETE`); unchanged when it already ended."""
    if window.end <= now:
        return window
    end = max(window.start, now)
    return Window(window.id, window.checks, window.start, end, window.reason, "api", closed=True)


def bounded(windows: Iterable[Window], now: float) -> list[Window]:
    """The run-time windows worth keeping: not ended long ago, the newest
    MAX_RUNTIME_WINDOWS, oldest first."""
    kept = sorted((w for w in windows if w.end > now - KEEP_ENDED), key=lambda w: (w.start, w.id))
    return kept[-MAX_RUNTIME_WINDOWS:]


class Maintenance:
    """Every window, configured and opened at run time; answers "is this check covered"."""

    def __init__(
        self,
        entries: Sequence[WindowConfig] = (),
        *,
        members: Mapping[str, Sequence[str]] | None = None,
        depends_on: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.entries = list(entries)
        self.runtime: list[Window] = []
        self._members = {k: list(v) for k, v in (members or {}).items()}
        self._dependents: dict[str, list[str]] = {}
        for child, parents in (depends_on or {}).items():
            for parent in parents:
                self._dependents.setdefault(parent, []).append(child)
        self._covered_cache: dict[tuple[str, ...], frozenset[str]] = {}
        self._config_cache: tuple[float, float, list[Window]] = (0.0, -1.0, [])
        # Bumped on every change worth persisting (run-time windows only).
        self.version = 0

    # ------------------------------------------------------------ questions

    def covering(self, check: str, now: float) -> Window | None:
        """The active window that covers `check` right now, if any."""
        for window in self._windows_around(now):
            if window.active(now) and self.applies(window, check):
                return window
        return None

    def covers(self, check: str, now: float) -> bool:
        return self.covering(check, now) is not None

    def applies(self, window: Window, check: str) -> bool:
        """Whether `window` covers `check` (its own name, a group or a dependency)."""
        return self._covers(window, check)

    def active(self, now: float) -> list[Window]:
        return [w for w in self._windows_around(now) if w.active(now)]

    def listing(self, now: float) -> list[Window]:
        """Current, upcoming (a week ahead) and recently ended windows, newest start first."""
        config = [
            w
            for i, entry in enumerate(self.entries)
            for w in occurrences(i, entry, now - KEEP_ENDED, now + UPCOMING)
        ]
        runtime = [w for w in self.runtime if w.end > now - KEEP_ENDED]
        return sorted([*config, *runtime], key=lambda w: (w.start, w.id), reverse=True)

    def find(self, window_id: str) -> Window | None:
        return next((w for w in self.runtime if w.id == window_id), None)

    # ------------------------------------------------------------ run-time windows

    def open(self, checks: Iterable[str], duration: float, reason: str, now: float) -> Window:
        window = new_window(checks, duration, reason, now)
        self.put(window, now)
        return window

    def put(self, window: Window, now: float) -> None:
        """Add a run-time window, or replace the one with its id (closed elsewhere)."""
        kept = [w for w in self.runtime if w.id != window.id and w.end > now - KEEP_ENDED]
        self.runtime = [*kept, window][-MAX_RUNTIME_WINDOWS:]
        self.version += 1

    def close(self, window_id: str, now: float) -> Window | None:
        """End a run-time window now; None when there is no such window."""
        for i, window in enumerate(self.runtime):
            if window.id == window_id:
                if window.end > now:
                    window = self.runtime[i] = closed_at(window, now)
                    self.version += 1
                return window
        return None

    def replace(self, windows: Iterable[Window], now: float) -> bool:
        """Take the run-time windows a fleet shares (its store is the truth); True when
        they differ from the ones held."""
        kept = bounded(windows, now)
        if kept == self.runtime:
            return False
        self.runtime = kept
        self.version += 1
        return True

    def export(self) -> list[dict[str, Any]]:
        return [w.to_dict() for w in self.runtime]

    def restore(self, saved: Iterable[Mapping[str, Any]], now: float) -> list[str]:
        """Take run-time windows from a state file; one problem line per entry refused."""
        problems = []
        for i, data in enumerate(saved):
            try:
                window = Window.from_dict(data)
            except KeyError as exc:
                problems.append(f"maintenance[{i}]: missing {exc.args[0]}")
                continue
            except (TypeError, ValueError) as exc:
                problems.append(f"maintenance[{i}]: {exc}")
                continue
            if window.end - window.start > MAX_DURATION:
                problems.append(f"maintenance[{i}]: longer than 31d")
            elif window.end > now - KEEP_ENDED and not self.find(window.id):
                self.runtime.append(window)
        del self.runtime[:-MAX_RUNTIME_WINDOWS]
        return problems

    def carry(self, previous: Maintenance) -> None:
        """Keep the run-time windows of the instance this one replaces (a reload)."""
        self.runtime = list(previous.runtime)
        self.version = previous.version

    # ------------------------------------------------------------ inside

    def _windows_around(self, now: float) -> list[Window]:
        """Config occurrences near `now` (cached for an hour) plus run-time windows."""
        lo, hi, cached = self._config_cache
        if not lo <= now < hi:
            lo, hi = now - 1, now + 3600
            cached = [
                w for i, entry in enumerate(self.entries) for w in occurrences(i, entry, lo, hi)
            ]
            self._config_cache = (lo, hi, cached)
        return [*cached, *self.runtime] if self.runtime else cached

    def _covers(self, window: Window, check: str) -> bool:
        if not window.checks:
            return True
        covered = self._covered_cache.get(window.checks)
        if covered is None:
            covered = self._covered_cache[window.checks] = self._expand(window.checks)
        return check in covered

    def _expand(self, names: Iterable[str]) -> frozenset[str]:
        """The named checks, their group members, and what depends on any of them."""
        covered: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in covered:
                continue
            covered.add(name)
            stack.extend(self._members.get(name, ()))
            stack.extend(self._dependents.get(name, ()))
        return frozenset(covered)
