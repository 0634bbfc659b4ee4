"""History against a hostile host: its file deleted while the agent runs (a volume cleanup,
`rm -rf /var/lib/probe/*`), and a wall clock stepped 400 days ahead for a few seconds.
Each runs the real agent in a child process and counts what survives in the file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from probe.engine.history.codec import decode_chunk
from tests.conftest import free_port
from tests.hostile import AgentProcess
from tests.libfaketime import faked_env


def agent_yaml(port: int, history: Path, checks: int) -> str:
    lines = [
        f'agent: {{ name: hs, listen: "127.0.0.1:{port}", history: "sqlite://{history}" }}',
        "defaults: { interval: 1s, timeout: 500ms }",
        "checks:",
    ]
    lines += [f"  - {{ name: c{i}, type: tcp, host: 127.0.0.1, port: 9 }}" for i in range(checks)]
    return "\n".join(lines) + "\n"


async def runs_in_24h(base: str, check: str = "c0") -> int:
    """Runs of `check` the status API counts over the last 24 hours."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
        session.get(f"{base}/api/v1/checks/{check}/history?window=24h") as response,
    ):
        body = await response.json()
    return sum(p["pass"] + p["warn"] + p["fail"] for p in body["points"])


def rows_in_file(path: Path) -> tuple[int, float]:
    """(results stored in the raw table, the latest hour they are in); (0, 0) when the
    file is gone or has no table."""
    if not path.exists():
        return 0, 0
    with sqlite3.connect(path) as db:
        try:
            found = db.execute("SELECT hour, data FROM raw").fetchall()
        except sqlite3.OperationalError:
            return 0, 0
    count = sum(len(decode_chunk(h, bytes(b))) for h, b in found)
    return count, max((h for h, _ in found), default=0)


async def until(condition: Callable[[], Awaitable[bool]], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not await condition():
        assert time.monotonic() < deadline, f"not within {limit}s"
        await asyncio.sleep(0.2)


def said(agent: AgentProcess) -> list[str]:
    found = []
    for line in agent.log_lines():
        try:
            found.append(str(json.loads(line)["msg"]))
        except (ValueError, KeyError, TypeError):
            found.append(line)
    return found


async def test_a_history_file_deleted_while_running_is_started_again_with_what_memory_holds(
    tmp_path: Path,
) -> None:
    port = free_port()
    folder = tmp_path / "lib"
    folder.mkdir()
    history = folder / "history.db"
    config = tmp_path / "probe.yaml"
    config.write_text(agent_yaml(port, history, 3))
    agent = AgentProcess(config, port, tmp_path / "agent.log").start()
    try:
        await agent.wait_until_serving()

        async def some_runs() -> bool:
            return await runs_in_24h(agent.base) >= 4

        await until(some_runs, 40)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{history}{suffix}").unlink(missing_ok=True)
        await asyncio.sleep(5)
        recorded = await runs_in_24h(agent.base)
    finally:
        assert agent.stop() == 0
    stored, _ = rows_in_file(history)
    print(f"\nR3: {recorded} runs of c0 recorded, {stored} results of 3 checks in the file")
    assert stored >= 3 * recorded - 3  # every run made before the stop, of every check
    lines = [m for m in said(agent) if "history file" in m]
    assert lines == [
        f"history file {history} was removed; starting a new one and writing again what "
        "memory still holds"
    ]

    # A new process sees them: nothing recorded before the stop is lost.
    second = AgentProcess(config, port, tmp_path / "agent2.log").start()
    try:
        await second.wait_until_serving()

        async def all_back() -> bool:
            return await runs_in_24h(second.base) >= recorded

        await until(all_back, 10)
    finally:
        assert second.stop() == 0


async def test_a_clock_stepped_400_days_ahead_prunes_nothing_and_dates_nothing_ahead(
    tmp_path: Path, libfaketime: str
) -> None:
    port = free_port()
    history = tmp_path / "history.db"
    config = tmp_path / "probe.yaml"
    config.write_text(agent_yaml(port, history, 1))
    spec = tmp_path / "faketime"
    spec.write_text("+0\n")
    env = faked_env(libfaketime, str(spec))
    agent = AgentProcess(config, port, tmp_path / "agent.log", env=env).start()
    try:
        await agent.wait_until_serving()

        async def some_runs() -> bool:
            return await runs_in_24h(agent.base) >= 8

        await until(some_runs, 40)
        before = await runs_in_24h(agent.base)
        spec.write_text("+400d\n")
        await asyncio.sleep(5)
        spec.write_text("+0\n")
        await asyncio.sleep(4)
        after = await runs_in_24h(agent.base)
    finally:
        assert agent.stop() == 0
    stored, latest_hour = rows_in_file(history)
    print(f"\nR4: 24h runs {before} before the step, {after} after; {stored} in the file")
    assert after >= before
    assert stored >= before
    assert latest_hour <= time.time()  # no row dated in the future
    jumped = [m for m in said(agent) if "wall clock jumped" in m]
    assert len(jumped) == 1, jumped
    assert jumped[0].startswith("history: the wall clock jumped 400d ahead of the last result")
