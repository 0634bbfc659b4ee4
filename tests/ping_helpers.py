"""What the /ping tests share: an agent's config, a client session, one call, /health."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from probe.agent import Agent
from probe.contract.config import load_config


def agent_yaml(state_file: Path, token: str = "") -> str:
    return f"""
agent: {{ listen: "127.0.0.1:0", state_file: "{state_file}", ping_token: "{token}" }}
checks:
  - {{ name: billing, type: heartbeat, every: 1h, interval: 1s, timeout: 500ms,
       start_grace: 1m }}
  - {{ name: paystack-webhook, type: heartbeat, cron: "0 * * * *", tz: Africa/Johannesburg,
       interval: 1s, timeout: 500ms }}
"""


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


async def started(write_config: Any, text: str) -> Agent:
    agent = Agent(load_config(write_config(text), environ={}))
    await agent.start()
    return agent


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as response:
        return response.status, json.loads(await response.read())


async def health(session: aiohttp.ClientSession, agent: Agent) -> dict[str, Any]:
    _, body = await call(session, "GET", f"http://127.0.0.1:{agent.port}/health")
    return {c["name"]: c for c in body["checks"]}
