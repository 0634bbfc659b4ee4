"""A missed heartbeat reaches Slack through the running agent, in words a person acts on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from probe.agent import Agent
from probe.contract.config import load_config
from tests.slack_receiver import SlackReceiver


async def test_a_missed_heartbeat_pages_slack(
    write_config: Any, tmp_path: Path, receiver: SlackReceiver
) -> None:
    path = write_config(
        f"""
agent: {{ name: billing-probe, listen: "127.0.0.1:0", state_file: "{tmp_path}/state.json" }}
checks:
  - {{ name: billing-cron, type: heartbeat, every: 2s, grace: 1s, interval: 1s,
       timeout: 500ms, critical: true }}
alerts:
  for: {{ warn: 0s, fail: 0s }}
  group_wait: 200ms
  notifiers:
    - {{ type: slack, webhook_url: "{receiver.webhook_url}" }}
"""
    )
    agent = Agent(load_config(path, environ={}), path)
    await agent.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not receiver.delivered:
            await asyncio.sleep(0.1)
    finally:
        await agent.stop()
    assert receiver.delivered, "no Slack message within 15s"
    text = str(receiver.delivered[0]["text"])
    print(text)  # the closing note quotes it
    assert "billing-cron" in text
    assert "no ping since the agent began watching" in text
    assert "(every 2s, grace 1s)" in text
