"""Quiet hours: held warnings, criticals that still page, one digest when the window ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from probe.contract.config import ConfigError, alerts_from_dict, load_config
from probe.contract.config.schema import QuietHours
from probe.contract.notification import Kind, Notification, plain_text
from probe.engine.alerts.delivery import Backoff
from probe.engine.alerts.engine import AlertEngine
from probe.engine.alerts.service import AlertService
from tests.alert_helpers import REFUSED, backlog, make_config
from tests.slack_receiver import SlackReceiver
from tests.support import HandClock

WEEKNIGHTS: dict[str, Any] = {
    "days": ["mon-fri"],
    "start": "22:00",
    "end": "07:00",
    "tz": "Africa/Johannesburg",
    "hold": "warning",
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def engine(**window: Any) -> AlertEngine:
    quiet = {**WEEKNIGHTS, **window}
    settings = {
        "for": {"warn": "0s", "fail": "0s"},
        "resolve_after": 1,
        "repeat": 0,
        "quiet_hours": [quiet],
    }
    return AlertEngine(alerts_from_dict(settings))


@pytest.mark.parametrize(
    ("moment", "quiet"),
    [
        ((2026, 12, 1, 19, 59), False),  # Tue 21:59 in Johannesburg (UTC+2)
        ((2026, 12, 1, 20, 0), True),  # Tue 22:00
        ((2026, 12, 2, 4, 59), True),  # Wed 06:59, the morning of Tuesday's window
        ((2026, 12, 2, 5, 0), False),  # Wed 07:00
        ((2026, 12, 5, 3, 0), True),  # Sat 05:00: Friday night's window
        ((2026, 12, 5, 21, 0), False),  # Sat 23:00: no window starts on Saturday
        ((2026, 12, 7, 3, 0), False),  # Mon 05:00: Sunday night has none either
    ],
)
def test_a_window_across_midnight_belongs_to_the_day_it_starts(
    moment: tuple[int, ...], quiet: bool
) -> None:
    assert QuietHours.model_validate(WEEKNIGHTS).covers(utc(*moment)) is quiet


@pytest.mark.parametrize(
    ("moment", "quiet"),
    [
        ((2026, 3, 28, 6, 59), True),  # Sat 06:59 GMT
        ((2026, 3, 28, 7, 0), False),  # Sat 07:00 GMT
        ((2026, 3, 29, 5, 59), True),  # Sun 06:59 BST: the clocks went forward at 01:00 UTC
        ((2026, 3, 29, 6, 0), False),  # Sun 07:00 BST, an hour earlier in UTC
        ((2026, 10, 24, 5, 59), True),  # Sat 06:59 BST
        ((2026, 10, 25, 6, 59), True),  # Sun 06:59 GMT: the clocks went back at 01:00 UTC
        ((2026, 10, 25, 7, 0), False),
    ],
)
def test_windows_keep_their_local_hours_across_daylight_saving_changes(
    moment: tuple[int, ...], quiet: bool
) -> None:
    london = QuietHours(days=["mon-sun"], start="22:00", end="07:00", tz="Europe/London")
    assert london.covers(utc(*moment)) is quiet


def test_warnings_wait_criticals_page_and_one_digest_goes_out_when_the_window_ends() -> None:
    e = engine()
    night = utc(2026, 12, 1, 21, 0)  # Tue 23:00 in Johannesburg
    assert e.observe("queues", backlog(1240), night) == []  # a warning: held
    assert e.observe("redis", backlog(5000, "memory"), night + 60) == []
    assert e.observe("redis", backlog(10, "memory"), night + 1800) == []  # over, still held
    paged = e.observe("database", REFUSED, night + 3600)
    assert [(a.check, a.severity.value, a.held) for a in paged] == [("database", "critical", False)]
    assert e.tick(utc(2026, 12, 2, 4, 59)) == []  # Wed 06:59: still quiet

    digest = e.tick(utc(2026, 12, 2, 5, 0))  # Wed 07:00
    assert [(a.kind, a.key, a.held) for a in digest] == [
        (Kind.FIRING, "queues/ai-assistant", True),
        (Kind.RESOLVED, "redis/memory", True),
    ]
    resolved = digest[1]
    assert resolved.at == night + 1800 and resolved.lasted == 1740
    text = plain_text(Notification("botflow-probe", utc(2026, 12, 2, 5, 0), tuple(digest)))
    assert text.splitlines() == [
        "[botflow-probe: quiet hours digest: 1 warning, 1 resolved]",
        "WARNING queues/ai-assistant: ai-assistant backlog 1,240 > 1,000 "
        "(since 2026-12-01 21:00:00 UTC, held during quiet hours)",
        "RESOLVED redis/memory: memory backlog 5,000 > 1,000 "
        "(lasted 29m (since 2026-12-01 21:01:00 UTC), held during quiet hours)",
    ]
    assert e.tick(utc(2026, 12, 2, 5, 1)) == []  # said once


def test_hold_critical_holds_everything() -> None:
    e = engine(hold="critical")
    assert e.observe("database", REFUSED, utc(2026, 12, 1, 21, 0)) == []
    assert [a.check for a in e.tick(utc(2026, 12, 2, 5, 0))] == ["database"]


def test_a_digest_at_the_dst_change_goes_out_at_local_seven() -> None:
    e = engine(days=["sun"], tz="Europe/London", start="00:30", end="07:00")
    assert e.observe("queues", backlog(1240), utc(2026, 3, 29, 2, 0)) == []  # 03:00 BST
    assert e.tick(utc(2026, 3, 29, 5, 59)) == []
    assert [a.held for a in e.tick(utc(2026, 3, 29, 6, 0))] == [True]  # 07:00 BST


# ---------------------------------------------------------------- restart inside the window


def service(receiver: SlackReceiver, state_file: Path, clock: HandClock) -> AlertService:
    config = make_config(
        alerts={
            "for": {"warn": "0s", "fail": "0s"},
            "resolve_after": 1,
            "group_wait": "0s",
            "quiet_hours": [WEEKNIGHTS],
            "notifiers": [{"type": "slack", "webhook_url": receiver.webhook_url}],
        },
        agent={"state_file": str(state_file)},
    )
    return AlertService(config, clock=clock, backoff=Backoff(0.05, 0.2), tick_interval=0.02)


async def test_the_digest_survives_a_restart_inside_the_window(
    receiver: SlackReceiver, tmp_path: Path
) -> None:
    state_file, clock = tmp_path / "alerts.json", HandClock(utc(2026, 12, 1, 21, 0))
    first = service(receiver, state_file, clock)
    await first.start()
    first.observe("queues", backlog(1240))
    first.observe("system", backlog(5000, "memory"))
    clock.now += 600
    first.observe("system", backlog(10, "memory"))  # over inside the window
    await asyncio.sleep(0.1)
    await first.stop()
    assert receiver.received == []

    clock.now = utc(2026, 12, 2, 3, 0)  # Wed 05:00, still quiet: restarted
    second = service(receiver, state_file, clock)
    await second.start()
    try:
        await asyncio.sleep(0.1)
        assert receiver.received == []
        clock.now = utc(2026, 12, 2, 5, 0)  # 07:00: the window ends
        [digest] = await receiver.wait_for(1)
        await asyncio.sleep(0.2)
    finally:
        await second.stop()
    assert len(receiver.received) == 1
    lines = str(digest["text"]).splitlines()
    assert lines[0] == "[botflow-probe: quiet hours digest: 1 warning, 1 resolved]"
    assert lines[1].startswith("WARNING queues/ai-assistant: ai-assistant backlog 1,240")
    assert lines[2].startswith("RESOLVED system/memory: memory backlog 5,000 > 1,000 (lasted 10m")


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            "{start: '22:00', end: '07:00', tz: Mars/Olympus}",
            "alerts.quiet_hours[0].tz: unknown time zone 'Mars/Olympus' "
            "(an IANA name like Africa/Johannesburg)",
        ),
        (
            "{days: [mon-fry], start: '22:00', end: '07:00'}",
            "alerts.quiet_hours[0].days: expected days like mon, sat-sun or mon-fri, got 'mon-fry'",
        ),
        (
            "{start: '25:00', end: '07:00'}",
            "alerts.quiet_hours[0].start: expected a time of day like 22:00, got '25:00'",
        ),
        (
            "{start: '22:00', end: '07:00', hold: info}",
            "alerts.quiet_hours[0].hold: ",
        ),
    ],
)
def test_bad_quiet_hours_are_one_line_naming_the_key(
    write_config: Any, entry: str, problem: str
) -> None:
    path = write_config(f"alerts: {{quiet_hours: [{entry}]}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [line] = caught.value.problems
    assert line.startswith(f"{path}: {problem}"), line


def test_unquoted_times_are_read_as_times(write_config: Any) -> None:
    path = write_config("alerts: {quiet_hours: [{start: 22:00, end: 07:30}]}\n")
    [quiet] = load_config(path).alerts.quiet_hours
    assert (quiet.start, quiet.end) == ("22:00", "07:30")
