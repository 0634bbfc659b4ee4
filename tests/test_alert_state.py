"""Alert state across restarts: the state file, and in memory across a reload."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from probe.contract.plugin import CheckConfig
from probe.engine.alerts.delivery import Backoff
from probe.engine.alerts.service import AlertService
from probe.engine.alerts.state import SavedState, load_state, save_state
from tests.alert_helpers import HEALTHY, REFUSED, T0, make_config, no_workers
from tests.slack_receiver import SlackReceiver
from tests.support import HandClock


def service_for(
    receiver: SlackReceiver,
    state_file: Path | None,
    clock: HandClock,
    checks: list[CheckConfig] | None = None,
    **kwargs: Any,
) -> AlertService:
    config = make_config(
        alerts={
            "for": {"fail": "30s"},
            "group_wait": "0s",
            "notifiers": [{"type": "slack", "webhook_url": receiver.webhook_url}],
        },
        agent={"state_file": str(state_file) if state_file else ""},
        checks=checks,
    )
    return AlertService(config, clock=clock, backoff=Backoff(0.05, 0.2), **kwargs)


async def fire_database(service: AlertService, clock: HandClock) -> None:
    for _ in range(3):
        service.observe("database", REFUSED)
        clock.now += 15


async def fired_and_stopped(receiver: SlackReceiver, state_file: Path, clock: HandClock) -> None:
    """An agent that saw the database fail, told Slack, and stopped."""
    first = service_for(receiver, state_file, clock)
    await first.start()
    await fire_database(first, clock)
    await receiver.wait_for(1)
    await first.stop()


async def test_restart_while_firing_sends_no_repeat(
    receiver: SlackReceiver, tmp_path: Path
) -> None:
    state_file, clock = tmp_path / "alerts.json", HandClock(T0)
    await fired_and_stopped(receiver, state_file, clock)

    second = service_for(receiver, state_file, clock)
    await second.start()
    try:
        assert second.firing() == {"warning": 0, "critical": 1}
        await fire_database(second, clock)  # still down after the restart
        second.observe("queues", no_workers())  # something new, to know the queue moved
        clock.now += 45
        second.observe("queues", no_workers())
        bodies = await receiver.wait_for(2)
    finally:
        await second.stop()
    assert len(receiver.received) == 2
    assert "queues/ai-assistant" in bodies[1]["text"]
    assert "database" not in bodies[1]["text"]


async def test_restart_then_healthy_sends_the_resolve(
    receiver: SlackReceiver, tmp_path: Path
) -> None:
    state_file, clock = tmp_path / "alerts.json", HandClock(T0)
    await fired_and_stopped(receiver, state_file, clock)

    clock.now += 600  # the agent was down ten minutes; the database recovered meanwhile
    second = service_for(receiver, state_file, clock)
    await second.start()
    try:
        second.observe("database", HEALTHY)
        clock.now += 15
        second.observe("database", HEALTHY)
        resolved = (await receiver.wait_for(2))[1]
    finally:
        await second.stop()
    assert "RESOLVED database: connection refused (127.0.0.1:5432)" in resolved["text"]
    assert "lasted 11m" in resolved["text"]
    assert second.firing() == {"warning": 0, "critical": 0}


async def test_a_notification_not_delivered_before_stop_is_sent_after_start(
    receiver: SlackReceiver, tmp_path: Path
) -> None:
    state_file, clock = tmp_path / "alerts.json", HandClock(T0)
    await receiver.refuse()
    first = service_for(receiver, state_file, clock)
    await first.start()
    await fire_database(first, clock)
    await first.stop(flush_timeout=0.2)
    assert receiver.received == []

    await receiver.accept()
    second = service_for(receiver, state_file, clock)
    await second.start()
    try:
        body = (await receiver.wait_for(1))[0]
    finally:
        await second.stop()
    assert "CRITICAL database" in body["text"]


async def test_reload_carries_state_in_memory_without_a_state_file(
    receiver: SlackReceiver,
) -> None:
    clock = HandClock(T0)
    old = service_for(receiver, None, clock)
    await old.start()
    await fire_database(old, clock)
    await receiver.wait_for(1)
    await old.stop()

    new = service_for(receiver, None, clock, previous=old)
    await new.start()
    try:
        assert new.firing()["critical"] == 1
        assert new.notification_counts()[("slack", "sent")] == 1
        new.observe("database", HEALTHY)
        new.observe("database", HEALTHY)
        await receiver.wait_for(2)
    finally:
        await new.stop()


async def test_a_check_removed_by_reload_gets_its_resolve(receiver: SlackReceiver) -> None:
    clock = HandClock(T0)
    old = service_for(receiver, None, clock)
    await old.start()
    await fire_database(old, clock)
    await receiver.wait_for(1)
    await old.stop()
    new = service_for(
        receiver, None, clock, checks=[CheckConfig(name="redis", type="redis")], previous=old
    )
    await new.start()
    try:
        body = (await receiver.wait_for(2))[1]
    finally:
        await new.stop()
    assert "RESOLVED database: check removed from the configuration" in body["text"]


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"version": 99}', b"\xff\xfe", b'{"version": 1, "alerts": [{"check": 1}]}'],
)
async def test_a_corrupt_state_file_is_logged_and_ignored(
    receiver: SlackReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    state_file, clock = tmp_path / "alerts.json", HandClock(T0)
    state_file.write_bytes(content)
    service = service_for(receiver, state_file, clock)
    await service.start()
    try:
        assert service.firing() == {"warning": 0, "critical": 0}
        await fire_database(service, clock)
        await receiver.wait_for(1)
    finally:
        await service.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ignoring" in m and "alert state" in m for m in warnings)
    saved = json.loads(state_file.read_text())  # replaced by a good one
    assert [a["check"] for a in saved["alerts"]] == ["database"]


def test_state_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "alerts.json"
    assert save_state(path, SavedState(alerts=[{"x": 1}], saved_at=T0)) is None
    assert save_state(path, SavedState(alerts=[{"x": 2}], saved_at=T0)) is None
    assert [p.name for p in path.parent.iterdir()] == ["alerts.json"]  # no temp files left
    loaded = load_state(path)
    assert loaded is not None and loaded.alerts == [{"x": 2}]
    assert load_state(tmp_path / "missing.json") is None


def test_an_unwritable_state_file_is_reported_in_words(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert save_state(blocker / "alerts.json", SavedState()) == "Not a directory"
    (tmp_path / "alerts.json").mkdir()
    assert save_state(tmp_path / "alerts.json", SavedState()) == "Is a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.json", "file"]


def state_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    words = ("write alert state file", "written again")
    return [r.getMessage() for r in caplog.records if any(w in r.getMessage() for w in words)]


async def test_an_unwritable_state_file_is_logged_once_per_error_and_retried_calmly(
    receiver: SlackReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("")  # a file where the state directory should be
    state_file, clock = blocker / "alerts.json", HandClock(T0)
    await receiver.refuse()  # deliveries keep failing and retrying meanwhile
    service = service_for(receiver, state_file, clock, tick_interval=0.01, state_retry_interval=0.5)
    with caplog.at_level(logging.INFO, logger="probe.alerts"):
        await service.start()
        try:
            await fire_database(service, clock)
            await asyncio.sleep(0.4)  # 40 ticks, all with unsaved changes
            (first,) = state_errors(caplog)
            assert first == (
                f"cannot write alert state file {state_file}: Not a directory; alert state will "
                "not survive a restart until it can be written (retrying on each alert "
                "change and every 500ms)"
            )

            blocker.unlink()
            state_file.mkdir(parents=True)  # a new problem is logged anew
            service.observe("redis", REFUSED)
            await asyncio.sleep(0.1)
            assert len(state_errors(caplog)) == 2
            assert ": Is a directory;" in state_errors(caplog)[1]

            state_file.rmdir()  # fixed: written within the retry interval, no transition needed
            for _ in range(100):
                if state_file.exists():
                    break
                await asyncio.sleep(0.02)
            assert state_file.is_file()
            assert state_errors(caplog)[2:] == [f"alert state file {state_file} written again"]
        finally:
            await service.stop()
    saved = load_state(state_file)
    assert saved is not None and {a["check"] for a in saved.alerts} == {"database", "redis"}


async def test_state_file_lists_firing_keys_and_last_notified(
    receiver: SlackReceiver, tmp_path: Path
) -> None:
    state_file, clock = tmp_path / "alerts.json", HandClock(T0)
    service = service_for(receiver, state_file, clock)
    await service.start()
    try:
        await fire_database(service, clock)
        await receiver.wait_for(1)
        await asyncio.sleep(0.05)  # the write after delivery is scheduled on the loop
        saved = load_state(state_file)
    finally:
        await service.stop()
    assert saved is not None
    (alert,) = saved.alerts
    assert (alert["check"], alert["phase"], alert["severity"]) == ("database", "firing", "critical")
    assert alert["since"] == T0 and alert["notified_at"] == T0 + 30
    assert saved.outbox == {"slack[0]": []}


async def test_a_reload_says_queued_notifications_go_on_not_that_they_are_lost(
    receiver: SlackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = HandClock(T0)
    await receiver.refuse()  # the firing notification stays queued
    old = service_for(receiver, None, clock)
    await old.start()
    await fire_database(old, clock)
    await old.stop(flush_timeout=0.2, reloading=True)
    new = service_for(receiver, None, clock, previous=old)
    await receiver.accept()
    await new.start()
    try:
        assert "CRITICAL database" in (await receiver.wait_for(1))[0]["text"]
    finally:
        await new.stop()
    words = [r.getMessage() for r in caplog.records if "notifications for" in r.getMessage()]
    assert words == [
        "1 notifications for slack webhook 127.0.0.1 still queued; the reloaded config sends them"
    ]
