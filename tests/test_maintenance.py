"""Maintenance windows: what the engine sends around a window, recurring windows in local
time across daylight-saving changes, and uptime that leaves window time out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from probe.contract.config import alerts_from_dict
from probe.contract.notification import Alert, Kind
from probe.core.maintenance import Maintenance, WindowConfig, occurrences
from probe.core.model import CheckResult, Status
from probe.engine.alerts.engine import AlertEngine
from probe.engine.history.model import HOUR, Chunk
from probe.engine.history.rollup import combine, rollup_chunk, uptime

T0 = 1_764_583_200.0  # 2025-12-01T10:00:00Z
REFUSED = CheckResult(Status.FAIL, 0.01, "connection refused (127.0.0.1:3000)", T0, ())
HEALTHY = CheckResult(Status.PASS, 0.01, "", T0, ())


def engine_with(maintenance: Maintenance) -> AlertEngine:
    settings = {"for": {"warn": "5m", "fail": "1m"}, "resolve_after": 2, "repeat": "4h"}
    return AlertEngine(alerts_from_dict(settings), maintenance=maintenance)


def run(
    engine: AlertEngine, check: str, results: list[CheckResult], start: float, step: float = 15.0
) -> list[tuple[float, Alert]]:
    """One result every `step` seconds and a tick between them, as the agent does."""
    due = []
    for i, res in enumerate(results):
        now = start + i * step
        due += [(now, a) for a in engine.observe(check, res, now)]
        due += [(now + 1, a) for a in engine.tick(now + 1)]
    return due


def test_an_outage_inside_a_window_sends_nothing_at_all() -> None:
    windows = Maintenance()
    windows.open(["app"], 600, "deploy v1.4", T0)
    engine = engine_with(windows)
    # Down for 5 minutes (well past `for: 1m`), back, all inside the 10-minute window.
    due = run(engine, "app", [REFUSED] * 20 + [HEALTHY] * 4, T0)
    assert due == []
    # Nor anything afterwards about what began and ended inside it.
    assert engine.tick(T0 + 601) == []
    assert engine.tick(T0 + 3600) == []


def test_an_outage_that_outlasts_the_window_fires_once_when_it_ends() -> None:
    windows = Maintenance()
    windows.open(["app"], 600, "deploy v1.4", T0)
    engine = engine_with(windows)
    due = run(engine, "app", [REFUSED] * 60, T0)  # 15 minutes down
    fired = [(t - T0, a.kind, a.check, a.summary) for t, a in due]
    assert len(fired) == 1
    at, kind, check, summary = fired[0]
    assert (kind, check) == (Kind.FIRING, "app")
    assert 600 <= at <= 616  # the first tick or run after the window closed
    assert "connection refused (127.0.0.1:3000)" in summary


def test_a_window_does_not_resolve_an_alert_that_was_already_firing() -> None:
    windows = Maintenance()
    engine = engine_with(windows)
    before = run(engine, "app", [REFUSED] * 8, T0)
    assert [a.kind for _, a in before] == [Kind.FIRING]
    windows.open(["app"], 600, "", T0 + 120)
    # Still down inside the window: no reminder, no resolve; still firing.
    assert run(engine, "app", [REFUSED] * 20, T0 + 120) == []
    assert engine.firing_counts()["critical"] == 1
    assert [a.check for a in engine.active(T0 + 300)] == ["app"]  # Alertmanager keeps it
    # Back up inside the window: it resolves as usual.
    after = run(engine, "app", [HEALTHY] * 2, T0 + 420)
    assert [a.kind for _, a in after] == [Kind.RESOLVED]


def test_checks_that_depend_on_a_covered_check_are_covered() -> None:
    windows = Maintenance(depends_on={"queues": ["redis"], "billing": ["queues"]})
    windows.open(["redis"], 600, "redis upgrade", T0)
    assert windows.covers("redis", T0 + 1)
    assert windows.covers("queues", T0 + 1)
    assert windows.covers("billing", T0 + 1)  # transitively
    assert not windows.covers("database", T0 + 1)
    engine = engine_with(windows)
    assert run(engine, "billing", [REFUSED] * 20, T0) == []


def test_a_window_on_a_group_covers_its_members() -> None:
    windows = Maintenance(members={"external": ["paystack", "openai"]})
    windows.open(["external"], 60, "", T0)
    assert windows.covers("openai", T0 + 30)
    assert not windows.covers("openai", T0 + 60)  # the end is not inside


def test_closing_a_window_early_ends_coverage_and_keeps_it_listed() -> None:
    windows = Maintenance()
    window = windows.open([], 3600, "db upgrade", T0)
    assert windows.covers("anything", T0 + 10)
    closed = windows.close(window.id, T0 + 60)
    assert closed is not None and closed.closed and closed.end == T0 + 60
    assert not windows.covers("anything", T0 + 61)
    assert [w.id for w in windows.listing(T0 + 120)] == [window.id]
    assert windows.close("no-such-id", T0 + 120) is None


def test_run_time_windows_survive_an_export_and_restore() -> None:
    windows = Maintenance()
    window = windows.open(["app"], 600, "deploy", T0)
    again = Maintenance()
    assert again.restore(windows.export(), T0 + 10) == []
    assert again.covers("app", T0 + 10) and again.find(window.id) == window


@pytest.mark.parametrize(
    "saved, words",
    [
        ({"id": "x", "checks": ["a"], "start": T0, "end": float("inf")}, "finite"),
        ({"id": "x", "checks": "a", "start": T0, "end": T0 + 60}, "list of names"),
        ({"id": "x", "checks": [], "start": T0, "end": T0 + 40 * 86400}, "longer than 31d"),
        ({"checks": [], "start": T0, "end": T0 + 60}, "missing id"),
    ],
)
def test_a_broken_saved_window_is_refused_with_words(saved: dict[str, Any], words: str) -> None:
    windows = Maintenance()
    problems = windows.restore([saved], T0)
    assert len(problems) == 1 and words in problems[0]
    assert windows.runtime == []


def local(text: str, zone: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(
    "zone, start, local_starts, utc_starts",
    [
        # New York leaves daylight time on 2026-11-01: 02:00 local is 06:00 UTC before,
        # 07:00 UTC after.
        ("America/New_York", "2026-10-30T00:00", ["02:00"] * 4, [6, 6, 7, 7]),
        # It springs forward on 2026-03-08: 02:00 does not exist that night, and the
        # window starts at the first minute that does (03:00, 07:00 UTC).
        ("America/New_York", "2026-03-06T00:00", ["02:00", "02:00", "03:00", "02:00"],
         [7, 7, 7, 6]),
        # Johannesburg keeps UTC+2 all year: 02:00 local is 00:00 UTC every day.
        ("Africa/Johannesburg", "2026-10-30T00:00", ["02:00"] * 4, [0, 0, 0, 0]),
    ],
)  # fmt: skip
def test_a_recurring_window_starts_at_the_same_local_time_across_dst(
    zone: str, start: str, local_starts: list[str], utc_starts: list[int]
) -> None:
    entry = WindowConfig.model_validate({"cron": "0 2 * * *", "duration": "1h", "tz": zone})
    since = local(start, zone)
    found = sorted(occurrences(0, entry, since, since + 4 * 86400), key=lambda w: w.start)
    assert [datetime.fromtimestamp(w.start, ZoneInfo(zone)).strftime("%H:%M") for w in found] == (
        local_starts
    )
    assert [datetime.fromtimestamp(w.start, UTC).hour for w in found] == utc_starts
    assert {w.end - w.start for w in found} == {3600}


def test_a_recurring_window_covers_only_inside_its_occurrences() -> None:
    entry = WindowConfig.model_validate(
        {
            "checks": ["database"],
            "cron": "0 2 * * sun",
            "duration": "30m",
            "tz": "Africa/Johannesburg",
        }
    )
    windows = Maintenance([entry])
    sunday_2am = local("2026-12-06T02:00", "Africa/Johannesburg")  # a Sunday
    assert not windows.covers("database", sunday_2am - 1)
    assert windows.covers("database", sunday_2am)
    assert windows.covers("database", sunday_2am + 1799)
    assert not windows.covers("database", sunday_2am + 1800)
    assert not windows.covers("redis", sunday_2am + 60)
    assert (
        windows.covering("database", sunday_2am + 60)
        == occurrences(0, entry, sunday_2am, sunday_2am + 1)[0]
    )


def test_uptime_of_a_day_leaves_the_window_out_and_counts_the_outage() -> None:
    """A day of runs a minute apart: hour 3 inside a window (failing: the upgrade), hour
    10 a real outage. The window hour is left out, the outage counts: 22 of 23 hours."""
    day = 1_764_547_200  # 2025-12-01T00:00:00Z
    hours = []
    for h in range(24):
        chunk = Chunk(day + h * HOUR)
        for m in range(60):
            status = Status.FAIL if h in (3, 10) else Status.PASS
            chunk.add(day + h * HOUR + m * 60, status, 0.01, 60.0, maintenance=h == 3)
        hours.append(rollup_chunk(chunk))
    total = combine(hours)
    assert total.failed == 60  # the outage's runs; the window's are not counted
    assert uptime(total) == pytest.approx(22 / 23)
