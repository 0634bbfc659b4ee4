"""A state file of the previous release (version 1, keys without a measure) loads, keeps
its firing alerts, sends nothing twice, and resolves each of them exactly once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from probe.core.model import Status
from probe.engine.alerts.delivery import Backoff
from probe.engine.alerts.service import AlertService
from probe.engine.alerts.state import load_state
from tests.alert_helpers import HEALTHY, REFUSED, T0, make_config, no_workers, obs, result
from tests.slack_receiver import SlackReceiver
from tests.support import HandClock

# Written by release 7c5e357 (AlertEngine.export + SavedState.to_json) for two firing,
# notified alerts: a database that refused connections and a queue without workers.
VERSION_1 = {
    "version": 1,
    "saved_at": T0 + 30,
    "alerts": [
        {
            "check": "database",
            "component": "",
            "phase": "firing",
            "severity": "critical",
            "summary": "connection refused (127.0.0.1:5432)",
            "since": T0,
            "nonpass_since": T0,
            "fail_since": T0,
            "passes": 0,
            "fired_at": T0,
            "notified_severity": "critical",
            "notified_at": T0,
        },
        {
            "check": "queues",
            "component": "ai-assistant",
            "phase": "firing",
            "severity": "critical",
            "summary": "ai-assistant workers 0 < 1",
            "since": T0,
            "nonpass_since": T0,
            "fail_since": T0,
            "passes": 0,
            "fired_at": T0,
            "notified_severity": "critical",
            "notified_at": T0,
        },
    ],
    "outbox": {
        "slack[0]": [
            {
                "agent": "botflow-probe",
                "created": T0 + 20,
                "alerts": [
                    {
                        "check": "redis",
                        "component": "",
                        "severity": "critical",
                        "kind": "resolved",
                        "summary": "connection refused (127.0.0.1:6379)",
                        "since": T0,
                        "at": T0 + 20,
                        "fired_at": T0,
                        "previous_severity": None,
                    }
                ],
            }
        ]
    },
}


def service(receiver: SlackReceiver, state_file: Path, clock: HandClock) -> AlertService:
    config = make_config(
        alerts={
            "for": {"fail": "0s"},
            "group_wait": "0s",
            "notifiers": [{"type": "slack", "webhook_url": receiver.webhook_url}],
        },
        agent={"state_file": str(state_file)},
    )
    return AlertService(config, clock=clock, backoff=Backoff(0.05, 0.2))


async def test_a_version_1_state_file_keeps_its_firing_alerts_and_resolves_them_once(
    receiver: SlackReceiver, tmp_path: Path
) -> None:
    state_file, clock = tmp_path / "alerts.json", HandClock(T0 + 60)
    state_file.write_text(json.dumps(VERSION_1))
    upgraded = service(receiver, state_file, clock)
    await upgraded.start()
    try:
        assert upgraded.firing() == {"warning": 0, "critical": 2}
        [undelivered] = await receiver.wait_for(1)  # the old outbox still goes out
        assert "RESOLVED redis" in undelivered["text"]

        # Still broken after the upgrade: the old alerts are adopted, nobody is told again.
        for _ in range(3):
            upgraded.observe("database", REFUSED)
            upgraded.observe("queues", no_workers())
            clock.now += 15
        await asyncio.sleep(0.2)
        assert len(receiver.received) == 1
        assert upgraded.firing() == {"warning": 0, "critical": 2}
        await asyncio.sleep(0.05)
        saved = load_state(state_file)
        assert saved is not None
        assert sorted((a["check"], a["measure"]) for a in saved.alerts) == [
            ("database", "up"),
            ("queues", "workers"),
        ]
        assert json.loads(state_file.read_text())["version"] == 2

        healthy_queue = result(Status.PASS, obs("ai-assistant", "workers", 2))
        for _ in range(2):
            upgraded.observe("database", HEALTHY)
            upgraded.observe("queues", healthy_queue)
            clock.now += 15
        bodies = await receiver.wait_for(3)
        await asyncio.sleep(0.2)
    finally:
        await upgraded.stop()
    resolved = "\n".join(str(b["text"]) for b in bodies[1:])
    assert resolved.count("RESOLVED database: connection refused (127.0.0.1:5432)") == 1
    assert resolved.count("RESOLVED queues/ai-assistant: ai-assistant workers 0 < 1") == 1
    assert len(receiver.received) == 3
    assert upgraded.firing() == {"warning": 0, "critical": 0}


async def test_a_version_1_key_resolves_when_its_component_is_healthy(
    receiver: SlackReceiver, tmp_path: Path
) -> None:
    """Fixed while probe was being upgraded: the first healthy runs send the resolves."""
    state_file, clock = tmp_path / "alerts.json", HandClock(T0 + 60)
    state_file.write_text(json.dumps({**VERSION_1, "outbox": {}}))
    upgraded = service(receiver, state_file, clock)
    await upgraded.start()
    try:
        for _ in range(2):
            upgraded.observe("database", HEALTHY)
            upgraded.observe("queues", result(Status.PASS, obs("ai-assistant", "workers", 1)))
            clock.now += 15
        bodies = await receiver.wait_for(2)
    finally:
        await upgraded.stop()
    text = "\n".join(str(b["text"]) for b in bodies)
    assert "RESOLVED database" in text and "RESOLVED queues/ai-assistant" in text
