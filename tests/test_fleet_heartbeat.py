"""`agent.heartbeat`: the outgoing dead-man's switch, against a local receiver and against
a second probe's `heartbeat` check."""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from probe.agent import Agent
from probe.contract.config import load_config
from tests.conftest import free_port
from tests.fleet_helpers import Replica
from tests.slack_receiver import SlackReceiver

PING_KEY = "f3c1d7a9b2e84c6d8a1f0b3e5d7c9a2b"  # a secret, as healthchecks.io's UUIDs are


class PingReceiver:
    """Records (path, monotonic time, Authorization) of every GET, as healthchecks.io would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.pings: list[tuple[str, float, str]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def ping(request: web.Request) -> web.Response:
            auth = request.headers.get("Authorization", "")
            self.pings.append((request.path, time.monotonic(), auth))
            return web.Response(text="OK")

        app = web.Application()
        app.router.add_get("/{path:.*}", ping)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.pings]


@pytest.fixture
async def pings() -> AsyncIterator[PingReceiver]:
    receiver = PingReceiver()
    await receiver.start()
    yield receiver
    await receiver.close()


async def test_pings_every_interval_and_fail_once_the_scheduler_stalls(
    write_config: Any, pings: PingReceiver, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(
        f"""
agent:
  listen: 127.0.0.1:0
  history: "off"
  live_timeout: 3s
  heartbeat: {{url: "http://127.0.0.1:{pings.port}/{PING_KEY}", every: 1s, timeout: 500ms,
              token: beat-token-77}}
checks:
  - {{name: cache, type: redis, url: "{redis_url}"}}
"""
    )
    caplog.set_level(logging.INFO)
    agent = Agent(load_config(config), config)
    await agent.start()
    try:
        await asyncio.sleep(3.5)
        ok = [(p, t) for p, t, _ in pings.pings if p == f"/{PING_KEY}"]
        assert len(ok) in (3, 4, 5), pings.paths()
        gaps = [b[1] - a[1] for a, b in itertools.pairwise(ok)]
        assert all(0.8 <= g <= 1.3 for g in gaps), gaps
        assert {auth for _, _, auth in pings.pings} == {"Bearer beat-token-77"}
        assert not any(p.endswith("/fail") for p in pings.paths())

        # The scheduler's own heartbeat stops, as it does when its task dies: /live would
        # say stalled after live_timeout, and so does the outgoing heartbeat.
        beat = agent.scheduler._heartbeat
        assert beat is not None
        beat.cancel()
        stalled_at = time.monotonic()
        await asyncio.sleep(5)
        fails = [t for p, t, _ in pings.pings if p == f"/{PING_KEY}/fail"]
        assert fails, pings.paths()
        assert 2.0 <= fails[0] - stalled_at <= 4.5  # the last tick was up to 1s before
        assert all(0.8 <= b - a <= 1.3 for a, b in itertools.pairwise(fails))
    finally:
        await agent.stop()
    logged = caplog.text
    assert "heartbeat to http://127.0.0.1:" in logged
    assert PING_KEY not in logged and "beat-token-77" not in logged
    assert logged.count("the scheduler has stalled") == 1  # once per stall, not per beat


async def test_a_dead_probe_is_noticed_by_the_probe_it_pings(
    tmp_path: Path, receiver: SlackReceiver
) -> None:
    watcher_port = free_port()
    watcher = tmp_path / "watcher.yaml"
    watcher.write_text(
        f"""
agent:
  name: watcher
  listen: 127.0.0.1:{watcher_port}
  history: "off"
  ping_token: watch-token-31
checks:
  - {{name: app-probe, type: heartbeat, every: 1s, grace: 2s, interval: 1s, timeout: 500ms}}
alerts:
  for: {{fail: 1s}}
  resolve_after: 2
  group_wait: 0s
  notifiers:
    - {{type: webhook, url: "http://127.0.0.1:{receiver.port}/services/watch-hook"}}
"""
    )
    watched = tmp_path / "watched.yaml"
    watched.write_text(
        f"""
agent:
  name: app-probe
  listen: 127.0.0.1:${{PROBE_PORT}}
  history: "off"
  heartbeat: {{url: "http://127.0.0.1:{watcher_port}/ping/app-probe", every: 1s,
              timeout: 500ms, token: watch-token-31}}
checks:
  - {{name: self, type: tcp, host: 127.0.0.1, port: {watcher_port}}}
"""
    )
    first = Replica(watched, 1)
    second = Replica(watcher, 2)
    await second.start()
    await first.start()
    try:
        await asyncio.sleep(4)
        assert receiver.delivered == []  # pinged every second: nothing to say

        first.kill(signal.SIGSTOP)
        stopped_at = time.monotonic()
        firing = (await receiver.wait_for(1, timeout=15))[0]
        noticed = time.monotonic() - stopped_at
        assert firing["kind"] == "firing"
        assert firing["alerts"][0]["check"] == "app-probe"
        # every + grace, then a run (interval) and `for` (one more run): about 5s, with
        # room for scheduling jitter on a busy machine.
        assert noticed <= 10, f"noticed after {noticed:.1f}s"

        first.kill(signal.SIGCONT)
        resolved = (await receiver.wait_for(2, timeout=15))[1]
        assert resolved["kind"] == "resolved"
        assert resolved["alerts"][0]["check"] == "app-probe"
    finally:
        if first.running:
            first.kill(signal.SIGCONT)
        await first.stop()
        await second.stop()
