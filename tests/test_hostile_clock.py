"""F2: a step of the wall clock (NTP `makestep`, a VM snapshot restore, suspend/resume)
must not stop checks, nor make old results look fresh.

The agent runs in a child process under libfaketime with its wall clock read from a file
the test rewrites; the monotonic clock stays real, as it does when the kernel's wall clock
is stepped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port
from tests.faultproxy import FaultProxy, Mode
from tests.hostile import AgentProcess

INTERVAL, TIMEOUT = 1.0, 0.5
# One loop turn for the heartbeat to render, and as much again for the poll itself.
SLACK = 1.5


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        yield s


async def health(session: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{base}/health") as response:
        return response.status, await response.json()


async def runs(session: aiohttp.ClientSession, base: str) -> int:
    """Scheduled runs of `dep` so far, every status."""
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    prefix = 'probe_check_runs_total{check="dep",'
    return sum(
        int(float(line.split()[-1])) for line in text.splitlines() if line.startswith(prefix)
    )


def faked_time(faked: dict[str, str]) -> float:
    """What a process started with the agent's libfaketime settings reads as the time."""
    done = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        capture_output=True,
        text=True,
        env={**os.environ, **faked, "FAKETIME_CACHE_DURATION": "0"},
        timeout=10,
    )
    return float(done.stdout)


async def seconds_until(condition: Callable[[], Awaitable[bool]], limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await condition():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return float("inf")


async def step_and_observe(
    session: aiohttp.ClientSession, base: str, faked: dict[str, str], offset: int, proxy: FaultProxy
) -> tuple[int, float, float]:
    """Step the agent's wall clock to `offset` seconds from real time; then (runs in 3 s,
    seconds until a refused dependency fails its check, seconds until it passes again)."""
    Path(faked["FAKETIME_TIMESTAMP_FILE"]).write_text(f"{offset:+d}\n")
    assert abs(faked_time(faked) - (time.time() + offset)) < 3, "libfaketime did not step"
    await asyncio.sleep(1.2)  # the agent rereads the file once a second
    before = await runs(session, base)
    await asyncio.sleep(3)
    ran = await runs(session, base) - before

    async def dep_is(status: str) -> bool:
        _, body = await health(session, base)
        return bool(body["checks"][0]["status"] == status)

    proxy.set(Mode.REFUSE)
    failed_after = await seconds_until(lambda: dep_is("fail"), 8)
    proxy.set(Mode.FORWARD)
    passed_after = await seconds_until(lambda: dep_is("pass"), 8)
    return ran, failed_after, passed_after


@pytest.mark.timeout(300)  # the first run may install faketime with apt-get (one time)
@pytest.mark.parametrize("first_step", [-3600, +3600], ids=["back-1h", "forward-1h"])
async def test_clock_steps_leave_checks_running_on_their_interval(
    first_step: int,
    libfaketime: str,
    redis_proxy: FaultProxy,
    tmp_path: Path,
    session: aiohttp.ClientSession,
) -> None:
    port = free_port()
    config = tmp_path / "probe.yaml"
    config.write_text(
        f"""
agent: {{ name: f2, listen: "127.0.0.1:{port}", live_timeout: 5s }}
defaults: {{ interval: {INTERVAL:g}s, timeout: {TIMEOUT * 1000:g}ms }}
checks:
  - {{ name: dep, type: redis, url: "redis://127.0.0.1:{redis_proxy.port}/0", critical: true }}
"""
    )
    spec = tmp_path / "faketime"
    spec.write_text("+0\n")
    env = {
        "LD_PRELOAD": libfaketime,
        "FAKETIME_TIMESTAMP_FILE": str(spec),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    agent = AgentProcess(config, port, tmp_path / "agent.log", env=env).start()
    try:
        await agent.wait_until_serving()
        seen = []
        for offset in (first_step, 0):  # the step, then the step that puts the clock right
            seen.append(await step_and_observe(session, agent.base, env, offset, redis_proxy))
        print(f"\nF2 {first_step:+d}s then back: (runs in 3s, s to fail, s to pass) = {seen}")
        for ran, failed_after, passed_after in seen:
            assert 2 <= ran <= 5  # one run a second
            assert failed_after < INTERVAL + TIMEOUT + SLACK
            assert passed_after < INTERVAL + TIMEOUT + SLACK
        status, _ = await health(session, agent.base)
        assert status == 200
    finally:
        assert agent.stop() == 0


class SteppedClocks:
    """A wall clock someone steps and a monotonic clock that only moves forward."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def elapse(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


async def test_staleness_and_uptime_follow_elapsed_time_not_the_wall_clock(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    from probe.contract.config import load_config
    from probe.core.model import CheckResult, Status
    from probe.engine.store import ResultStore
    from tests.support import web_app

    config = tmp_path / "probe.yaml"
    config.write_text(
        "defaults: { interval: 10s, timeout: 2s }\n"
        "checks: [ { name: dep, type: tcp, host: 127.0.0.1, port: 1, critical: true } ]\n"
    )
    clocks = SteppedClocks()
    store = ResultStore(
        load_config(config), clock=lambda: clocks.wall, monotonic=lambda: clocks.mono
    )
    client = await aiohttp_client(web_app(store))
    clocks.elapse(60)
    store.record("dep", CheckResult(Status.PASS, 0.01, "", clocks.wall))

    clocks.wall -= 3600  # stepped back an hour, then nothing arrives for 40 s
    clocks.elapse(40)
    store.render()
    response = await client.get("/health")
    body = await response.json()
    assert response.status == 503
    assert body["checks"][0]["output"].startswith("stale: last result 40s ago")
    assert body["uptime"] == 100

    clocks.wall += 7200  # and forward by two: a result 1 s old is fresh
    store.record("dep", CheckResult(Status.PASS, 0.01, "", clocks.wall))
    clocks.elapse(1)
    store.render()
    response = await client.get("/health")
    assert (response.status, (await response.json())["uptime"]) == (200, 101)


async def test_runs_keep_their_nominal_interval_and_first_runs_are_spread(
    write_config: Callable[[str], Path],
) -> None:
    from aiohttp import web

    from probe.agent import Agent
    from probe.contract.config import load_config

    arrivals: dict[str, list[float]] = {}

    async def hit(request: web.Request) -> web.Response:
        arrivals.setdefault(request.match_info["name"], []).append(time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{name}", hit)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    checks = "\n".join(
        f"  - {{ name: {name}, type: http, url: 'http://127.0.0.1:{port}/{name}'"
        f"{', critical: true' if name == 'main' else ''} }}"
        for name in ("main", "a", "b", "c")
    )
    text = (
        'agent: { listen: "127.0.0.1:0" }\n'
        "defaults: { interval: 1s, timeout: 500ms }\n"
        f"checks:\n{checks}\n"
    )
    agent = Agent(load_config(write_config(text)))
    started = time.monotonic()
    await agent.start()
    try:
        await asyncio.sleep(12.5)
    finally:
        await agent.stop()
        await runner.cleanup()
    first = {name: times[0] - started for name, times in arrivals.items()}
    means = {name: (t[-1] - t[0]) / (len(t) - 1) for name, t in arrivals.items()}
    print(f"\nF2 first runs at {first}; mean intervals {means}")
    # The critical check at once; the others a quarter, a half and three quarters in.
    assert first["main"] < 0.3
    for name, expected in (("a", 0.25), ("b", 0.5), ("c", 0.75)):
        assert abs(first[name] - expected) < 0.15, first
    for name, mean in means.items():
        assert abs(mean - 1.0) < 0.025, (name, arrivals[name])
