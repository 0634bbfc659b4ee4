"""The heartbeat check's verdicts, with an injected clock and pings recorded in an inbox
(the HTTP routes that record them are tests/test_pings.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from probe.checks.heartbeat import HeartbeatConfig
from probe.contract.config import ConfigError, load_config
from probe.contract.plugin import AgentServices
from probe.core.model import CheckResult, Status
from probe.engine.factory import build_runner
from probe.engine.pings import Inbox
from probe.engine.runner import CheckRunner
from tests.support import HandClock

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def heartbeat(
    clock: HandClock, inbox: Inbox | None = None, **fields: Any
) -> tuple[CheckRunner, Inbox]:
    cfg = HeartbeatConfig.model_validate(
        {"name": "billing", "type": "heartbeat", "interval": "30s", "timeout": "1s", **fields}
    )
    inbox = inbox or Inbox(clock=clock)
    inbox.configure(["billing"])
    return build_runner(cfg, clock=clock, agent=AgentServices(inbox)), inbox


async def run(runner: CheckRunner) -> CheckResult:
    return await runner.run()


async def test_on_time_passes_and_late_past_grace_fails() -> None:
    clock = HandClock(T0)
    runner, inbox = heartbeat(clock, every="1h", grace="15m")
    inbox.record("billing", "success", None, "", "")
    clock.advance(3600 + 14 * 60)
    assert (await run(runner)).status is Status.PASS
    clock.advance(2 * 60)  # 1h16m since the ping
    result = await run(runner)
    assert result.status is Status.FAIL
    assert result.output == (
        "no ping since 2027-01-15 08:00 UTC (1h16m ago); due 2027-01-15 09:00 UTC "
        "(every 1h, grace 15m)"
    )


async def test_never_pinged_counts_from_when_the_agent_began_watching() -> None:
    clock = HandClock(T0)
    runner, _ = heartbeat(clock, every="10m", grace="1m")
    clock.advance(10 * 60 + 30)
    assert (await run(runner)).status is Status.PASS
    clock.advance(60)
    result = await run(runner)
    assert result.output.startswith("no ping since the agent began watching 11m30s ago;")


async def test_start_without_end_fails_after_start_grace() -> None:
    clock = HandClock(T0)
    runner, inbox = heartbeat(clock, every="1h", grace="5m", start_grace="30m")
    inbox.record("billing", "start", None, "", "")
    clock.advance(29 * 60)
    assert (await run(runner)).status is Status.PASS
    clock.advance(18 * 60)
    result = await run(runner)
    assert result.status is Status.FAIL
    assert result.output == "started 47m ago, no end"
    inbox.record("billing", "success", None, "", "")
    ended = await run(runner)
    assert ended.status is Status.PASS
    assert {o.measure: o.value for o in ended.observations}["duration"] == 47 * 60


@pytest.mark.parametrize(
    ("kind", "code", "words"),
    [
        ("fail", None, "last run failed: card processor answered 502"),
        ("fail", 3, "last run failed (exit 3): card processor answered 502"),
    ],
)
async def test_fail_and_exit_codes(kind: str, code: int | None, words: str) -> None:
    clock = HandClock(T0)
    runner, inbox = heartbeat(clock, every="1h")
    inbox.record("billing", kind, code, "", "card processor\nanswered 502\n")
    result = await run(runner)
    assert result.status is Status.FAIL
    assert result.output == words
    inbox.record("billing", "success", 0, "", "")  # exit code 0 is success
    assert (await run(runner)).status is Status.PASS


async def test_too_fast_warns_under_min_duration() -> None:
    clock = HandClock(T0)
    runner, inbox = heartbeat(clock, every="1d", min_duration="1m")
    inbox.record("billing", "start", None, "", "")
    clock.advance(2)
    inbox.record("billing", "success", None, "", "")
    result = await run(runner)
    assert result.status is Status.WARN
    assert result.output == "duration 2s under min_duration 1m"


async def test_overlapping_runs_are_paired_by_rid() -> None:
    clock = HandClock(T0)
    runner, inbox = heartbeat(clock, every="1h", start_grace="10m", max_duration="9m")
    inbox.record("billing", "start", None, "a", "")
    clock.advance(60)
    inbox.record("billing", "start", None, "b", "")
    clock.advance(240)
    inbox.record("billing", "success", None, "a", "")  # a: 5m, b still running
    result = await run(runner)
    assert {o.measure: o.value for o in result.observations}["duration"] == 300
    assert result.status is Status.PASS
    clock.advance(30)
    inbox.record("billing", "success", None, "b", "")  # b: 4m30s
    result = await run(runner)
    assert {o.measure: o.value for o in result.observations}["duration"] == 270
    assert inbox.state("billing").open_runs == {}  # type: ignore[union-attr]


async def test_a_later_good_run_clears_a_run_that_died() -> None:
    clock = HandClock(T0)
    runner, inbox = heartbeat(clock, every="1h", start_grace="10m")
    inbox.record("billing", "start", None, "died", "")
    clock.advance(11 * 60)
    assert (await run(runner)).output == "started 11m ago, no end"
    inbox.record("billing", "start", None, "next", "")
    clock.advance(60)
    inbox.record("billing", "success", None, "next", "")
    assert (await run(runner)).status is Status.PASS


async def test_cron_across_a_dst_change() -> None:
    # Europe/London leaves summer time on Sunday 25 October 2026: 09:00 local is 08:00
    # UTC on Saturday and 09:00 UTC on Sunday, 25 hours later.
    london = ZoneInfo("Europe/London")
    saturday = datetime(2026, 10, 24, 9, 0, 20, tzinfo=london).timestamp()
    clock = HandClock(saturday)
    runner, inbox = heartbeat(clock, cron="0 9 * * *", tz="Europe/London", grace="15m")
    inbox.record("billing", "success", None, "", "")
    clock.advance(24 * 3600 + 10 * 60)  # Sunday 08:10 local: 24h later, not yet due
    assert (await run(runner)).status is Status.PASS
    clock.advance(60 * 60)  # Sunday 09:10 local: due at 09:00, within grace
    assert (await run(runner)).status is Status.PASS
    clock.advance(6 * 60)  # Sunday 09:16 local
    result = await run(runner)
    assert result.status is Status.FAIL
    assert result.output == (
        "no ping since 2026-10-24 09:00 BST (25h16m ago); due 2026-10-25 09:00 GMT "
        "(cron 0 9 * * * Europe/London, grace 15m)"
    ).replace("25h16m", "1d1h")


async def test_cron_on_a_day_the_time_does_not_exist() -> None:
    # 02:30 does not exist in New York on 8 March 2026; the run is due at 03:30 EDT.
    york = ZoneInfo("America/New_York")
    clock = HandClock(datetime(2026, 3, 7, 2, 30, 5, tzinfo=york).timestamp())
    runner, inbox = heartbeat(clock, cron="30 2 * * *", tz="America/New_York", grace="10m")
    inbox.record("billing", "success", None, "", "")
    clock.now = datetime(2026, 3, 8, 3, 39, tzinfo=york).timestamp()
    assert (await run(runner)).status is Status.PASS
    clock.now = datetime(2026, 3, 8, 3, 41, tzinfo=york).timestamp()
    result = await run(runner)
    assert "due 2026-03-08 03:30 EDT" in result.output


async def test_agent_restart_mid_run_keeps_the_start(tmp_path: Any) -> None:
    clock = HandClock(T0)
    path = str(tmp_path / "state.json.heartbeats.json")
    first = Inbox(path, clock)
    first.configure(["billing"])
    first.record("billing", "start", None, "run-7", "")
    await first.stop()  # the agent stops mid-run: its last write

    clock.advance(20 * 60)
    second = Inbox(path, clock)
    await second.start()
    runner, inbox = heartbeat(clock, inbox=second, every="1h", max_duration="15m")
    assert (await run(runner)).output == "started 20m ago, no end"
    inbox.record("billing", "success", None, "run-7", "")
    result = await run(runner)
    assert {o.measure: o.value for o in result.observations}["duration"] == 20 * 60
    assert result.output == "duration 20m over max_duration 15m"
    await second.stop()


async def test_one_shot_says_heartbeats_need_the_agent() -> None:
    cfg = HeartbeatConfig.model_validate({"name": "billing", "type": "heartbeat", "every": "1h"})
    result = await build_runner(cfg).run()
    assert result.status is Status.PASS
    notes = {o.measure: o.note for o in result.observations}
    assert (
        notes["last_ping_age"] == "needs the agent: heartbeats are pings the running agent receives"
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ("every: 1h, cron: '0 2 * * *'", "give exactly one of every"),
        ("cron: '0 25 * * *'", "checks[0].cron: expected five cron fields like '0 2 * * *'"),
        ("cron: '0 2 * * *', tz: Mars/Olympus", "checks[0].tz: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_schedules_are_config_errors(write_config: Any, fields: str, words: str) -> None:
    path = write_config(f"checks:\n  - {{ name: billing, type: heartbeat, {fields} }}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert any(words in p for p in caught.value.problems), caught.value.problems
