"""Frequent reloads (a configmap reloader, a cron sending SIGHUP) must not change how often
checks run: each kept check keeps its phase, as its results are kept."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp

from tests.conftest import free_port
from tests.hostile import AgentProcess

CHECKS = [f"c{i}" for i in range(1, 7)]
INTERVAL = 2.0


async def run_counts(base: str) -> dict[str, int]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
        session.get(f"{base}/metrics") as response,
    ):
        text = await response.text()
    counts = dict.fromkeys(CHECKS, 0)
    for line in text.splitlines():
        if line.startswith("probe_check_runs_total{"):
            name = line.split('check="', 1)[1].split('"', 1)[0]
            counts[name] += int(float(line.split()[-1]))
    return counts


async def test_a_sighup_every_second_leaves_every_check_on_its_interval(tmp_path: Path) -> None:
    port = free_port()
    checks = "\n".join(f"  - {{ name: {c}, type: tcp, host: 127.0.0.1, port: 9 }}" for c in CHECKS)
    config = tmp_path / "probe.yaml"
    config.write_text(
        f'agent: {{ name: r10, listen: "127.0.0.1:{port}", history: "off" }}\n'
        f"defaults: {{ interval: {INTERVAL:g}s, timeout: 1s }}\n"
        f"checks:\n{checks}\n"
    )
    agent = AgentProcess(config, port, tmp_path / "agent.log").start()
    try:
        await agent.wait_until_serving()
        await asyncio.sleep(3)  # every check has had its first run
        before, started = await run_counts(agent.base), time.monotonic()
        assert agent.process is not None
        for _ in range(8):
            agent.process.send_signal(signal.SIGHUP)
            await asyncio.sleep(1)
        after, elapsed = await run_counts(agent.base), time.monotonic() - started
        reloads = sum("config reloaded" in line for line in agent.log_lines())
    finally:
        assert agent.stop() == 0
    ran = {c: after[c] - before[c] for c in CHECKS}
    expected = elapsed / INTERVAL
    print(f"\nR10: {reloads} reloads in {elapsed:.1f}s; runs {ran}, about {expected:.1f} expected")
    assert reloads >= 6
    for check, count in ran.items():
        assert abs(count - expected) <= 1.5, (check, ran, expected)
