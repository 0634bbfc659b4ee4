"""Alerts end to end: a real dependency fails behind the fault proxy, the real agent runs
its checks, and the Slack stand-in and a real Alertmanager receive what a person would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from probe.agent import Agent
from probe.contract.config import load_config
from tests.alert_helpers import texts
from tests.alertmanager_server import am_alerts
from tests.faultproxy import FaultProxy, Mode
from tests.slack_receiver import SlackReceiver
from tests.support import until

CONFIG = """
agent: {{ name: e2e-probe, listen: "127.0.0.1:0", state_file: "{state}" }}
defaults: {{ interval: 1s, timeout: 500ms }}
checks:
  - {{ name: redis, type: redis, url: "redis://127.0.0.1:{port}/0", critical: true }}
alerts:
  for: {{ warn: 0s, fail: 0s }}
  resolve_after: 1
  group_wait: 200ms
  notifiers:
    - {{ type: slack, webhook_url: "{hook}" }}
    - {{ type: alertmanager, urls: ["{am}"] }}
"""


async def run_agent(config: Path) -> Agent:
    agent = Agent(load_config(config), config)
    await agent.start()
    return agent


@pytest.fixture
def config_file(
    write_config: Any,
    tmp_path: Path,
    redis_proxy: FaultProxy,
    receiver: SlackReceiver,
    alertmanager: str,
) -> Path:
    path: Path = write_config(
        CONFIG.format(
            state=tmp_path / "alert-state.json",
            port=redis_proxy.port,
            hook=receiver.webhook_url,
            am=alertmanager,
        )
    )
    return path


async def test_outage_fires_to_slack_and_alertmanager_then_resolves(
    config_file: Path,
    redis_proxy: FaultProxy,
    receiver: SlackReceiver,
    alertmanager: str,
) -> None:
    agent = await run_agent(config_file)
    try:
        redis_proxy.set(Mode.REFUSE)
        fired = await until(lambda: [t for t in texts(receiver) if "CRITICAL redis:" in t])
        assert fired[0].startswith("[e2e-probe: 1 critical]")
        assert "connection" in fired[0]
        colours = [a["color"] for b in receiver.delivered for a in b.get("attachments", [])]
        assert colours[0] == "#E01E5A"
        [alert] = await until(lambda: am_alerts(alertmanager, "redis"))
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["agent"] == "e2e-probe"
        assert alert["status"]["state"] == "active"

        redis_proxy.set(Mode.FORWARD)
        resolved = await until(lambda: [t for t in texts(receiver) if "RESOLVED redis:" in t])
        assert "lasted" in resolved[0]

        async def gone_from_alertmanager() -> bool:
            return not await am_alerts(alertmanager, "redis")

        await until(gone_from_alertmanager)
    finally:
        await agent.stop()


async def test_restart_neither_repeats_nor_forgets_to_resolve(
    config_file: Path, redis_proxy: FaultProxy, receiver: SlackReceiver
) -> None:
    redis_proxy.set(Mode.REFUSE)
    agent = await run_agent(config_file)
    try:
        await until(lambda: [t for t in texts(receiver) if "CRITICAL redis:" in t])
    finally:
        await agent.stop()

    # Restart while Redis is still down: the alert is still firing, nobody is told again.
    sent_before = len(receiver.delivered)
    agent = await run_agent(config_file)
    try:
        await until(lambda: agent.store.latest("redis") is not None, timeout=5)
        await asyncio.sleep(2.5)  # several runs and group_waits
        assert len(receiver.delivered) == sent_before
        assert agent.firing() == {"warning": 0, "critical": 1}
    finally:
        await agent.stop()

    # Redis is fixed while probe is down; the next start sends the resolve it owes.
    redis_proxy.set(Mode.FORWARD)
    agent = await run_agent(config_file)
    try:
        resolved = await until(lambda: [t for t in texts(receiver) if "RESOLVED redis:" in t])
        assert len(resolved) == 1
    finally:
        await agent.stop()
