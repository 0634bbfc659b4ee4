"""A reload lets go of what the old config built: the agent freezes what it builds out of
the garbage collector's sight, and frozen objects are never collected."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from probe.agent import Agent
from probe.contract.config import load_config


def http_config(path: Path, generation: int) -> Path:
    checks = "".join(
        f"  - {{ name: web-{generation}-{i}, type: http, url: 'http://127.0.0.1:9/{i}' }}\n"
        for i in range(3)
    )
    state = path.parent / "state.json"
    path.write_text(
        f"agent: {{ listen: '127.0.0.1:0', history: 'off', state_file: '{state}' }}\n"
        f"defaults: {{ interval: 1s, timeout: 500ms }}\nchecks:\n{checks}"
    )
    return path


async def test_a_reload_leaves_no_runner_of_the_old_config_behind(tmp_path: Path) -> None:
    path = http_config(tmp_path / "probe.yaml", 0)
    agent = Agent(load_config(path), path)
    await agent.start()
    try:
        await asyncio.sleep(0.5)  # the first runs are under way
        old = [weakref.ref(runner) for runner in agent.scheduler._runners]
        for generation in (1, 2):
            await agent.apply(load_config(http_config(path, generation)))
            await asyncio.sleep(0.1)
        gc.collect()
        # Frozen with the config that built them, they stayed for good, reload after reload.
        assert [ref() for ref in old] == [None] * len(old)
        assert len(agent.scheduler._runners) == 3
    finally:
        await agent.stop()
        gc.unfreeze()  # the rest of the test session's objects are the collector's again
