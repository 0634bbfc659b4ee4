"""The false-alarm side of the default limits, on the whole stack: the shipped config
(probe/default.yaml) against PostgreSQL, Redis, the app's BullMQ workers and the app
itself, all started seconds before the agent. Nothing is degraded, `probe check` exits 0,
and Slack hears nothing. Then the app stops answering and Slack hears its cause.

Only the third parties are left out (loopback only) and timing is shortened: runs every
second, and alerts with no `for`, so any non-pass would reach Slack within the test.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from probe.agent import Agent
from probe.contract.config import load_config
from tests.app_workers import Workers
from tests.conftest import free_port
from tests.deep_servers import RedisServers
from tests.pg_cluster import Cluster
from tests.slack_receiver import SlackReceiver

pytest_plugins = ["tests.deep_servers"]

SHIPPED = Path(__file__).resolve().parent.parent / "probe" / "default.yaml"


def shipped_config(
    alerts_for: dict[str, str],
    group_wait: str,
    extra_checks: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> str:
    raw = yaml.safe_load(SHIPPED.read_text())
    raw["agent"].update({"listen": "127.0.0.1:0", "history": "off", "state_file": ""})
    raw["defaults"] = {"interval": "1s", "timeout": "800ms"}
    raw["checks"] = [c for c in raw["checks"] if c["name"] != "external_services"]
    for check in raw["checks"]:
        if check["type"] == "system":
            # The test machine is shared and busy: its CPU says nothing about this stack.
            # The shipped cpu limits are the user's own, so `off` is how they go.
            check["warn"]["cpu"] = "off"
            check["fail"]["cpu"] = "off"
    raw["alerts"].update({"for": alerts_for, "group_wait": group_wait, "overrides": {}})
    return yaml.safe_dump(raw, sort_keys=False)


@dataclass
class Stack:
    env: dict[str, str]
    app_port: int
    path: Path


@pytest.fixture
async def fresh_stack(
    tmp_path: Path, redis_servers: RedisServers, receiver: SlackReceiver
) -> AsyncIterator[Stack]:
    cluster = Cluster()
    cluster.start()
    redis_port = redis_servers.start()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    workers = Workers(redis_url)
    runner: web.AppRunner | None = None
    try:
        await workers.start()

        async def live(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_get("/api/health/live", live)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        app_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", app_port).start()
        env = {
            "DATABASE_URL": cluster.dsn(),
            "REDIS_URL": redis_url,
            "APP_URL": f"http://127.0.0.1:{app_port}",
            "SLACK_WEBHOOK_URL": receiver.webhook_url,
            "PROBE_HISTORY": "off",
        }
        yield Stack(env, app_port, tmp_path / "probe.yaml")
    finally:
        if runner is not None:
            await runner.cleanup()
        workers.kill()
        cluster.destroy()


async def health(agent: Agent) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{agent.port}/health") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def test_a_stack_started_seconds_ago_is_healthy_and_nothing_alerts(
    fresh_stack: Stack, receiver: SlackReceiver
) -> None:
    fresh_stack.path.write_text(shipped_config({"warn": "0s", "fail": "0s"}, "1s"))
    agent = Agent(load_config(fresh_stack.path, environ=fresh_stack.env), fresh_stack.path)
    await agent.start()
    try:
        await asyncio.sleep(4)  # several rounds: restarts and per-window measures judged
        body = await health(agent)
    finally:
        await agent.stop()

    verdicts = {c["name"]: (c["status"], c.get("output", "")) for c in body["checks"]}
    assert verdicts == {
        name: ("pass", "") for name in ("database", "redis", "app", "queues", "system")
    }
    assert body["status"] == "healthy"
    assert receiver.received == []

    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "probe", "check", "-c", str(fresh_stack.path)],
        env={**_base_env(), **fresh_stack.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_an_app_outage_reaches_slack_with_its_cause(
    fresh_stack: Stack, receiver: SlackReceiver
) -> None:
    down = free_port()  # the app stopped: nothing listens here
    env = {**fresh_stack.env, "APP_URL": f"http://127.0.0.1:{down}"}
    fresh_stack.path.write_text(shipped_config({"warn": "5m", "fail": "2s"}, "1s"))
    agent = Agent(load_config(fresh_stack.path, environ=env), fresh_stack.path)
    await agent.start()
    try:
        [body] = await receiver.wait_for(1, timeout=20)
        await asyncio.sleep(2)  # nothing else follows: one alert, not two
    finally:
        await agent.stop()

    cause = f"connection refused (127.0.0.1:{down})"
    lines = str(body["text"]).splitlines()
    assert lines[0] == "[botflow-probe: 1 critical]"
    assert lines[1].startswith(f"CRITICAL app: {cause}; error_rate 100% > 50% (since ")
    assert len(lines) == 2
    [attachment] = body["attachments"]
    section = attachment["blocks"][0]["text"]["text"].splitlines()
    assert section[:2] == ["*CRITICAL*  `app`", f"{cause}; error_rate 100% > 50%"]
    assert len(receiver.delivered) == 1


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)
