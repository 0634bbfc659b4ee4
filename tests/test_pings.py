"""The /ping routes on a running agent: answers, token, bodies, and state across a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from probe.agent import Agent
from tests.ping_helpers import agent_yaml, call, health, started

TOKEN = "canary-ping-token-4471"


async def wait_for_output(
    session: aiohttp.ClientSession, agent: Agent, name: str, words: str
) -> dict[str, Any]:
    for _ in range(50):
        entry = (await health(session, agent))[name]
        if words in entry.get("output", ""):
            return dict(entry)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never said {words!r}: {entry}")


async def test_ping_answers(write_config: Any, tmp_path: Path, session: Any) -> None:
    agent = await started(write_config, agent_yaml(tmp_path / "state.json"))
    base = f"http://127.0.0.1:{agent.port}/ping"
    try:
        assert await call(session, "GET", f"{base}/billing") == (200, {"ok": True})
        assert await call(session, "POST", f"{base}/billing/start?rid=r1") == (200, {"ok": True})
        assert await call(session, "POST", f"{base}/billing/0?rid=r1") == (200, {"ok": True})
        status, body = await call(session, "GET", f"{base}/nope")
        assert (status, body["ok"]) == (404, False)
        assert body["error"] == "no heartbeat check named 'nope'"
        assert (await call(session, "GET", f"{base}/billing/256"))[0] == 404
        assert (await call(session, "GET", f"{base}/billing/restart"))[0] == 404
        assert (await call(session, "DELETE", f"{base}/billing"))[0] == 405
    finally:
        await agent.stop()


async def test_a_failed_run_shows_its_message_in_health(
    write_config: Any, tmp_path: Path, session: Any
) -> None:
    agent = await started(write_config, agent_yaml(tmp_path / "state.json"))
    try:
        body = "charge failed for 3 customers\n" + "x" * 20_000  # over 10 KB: cut, kept
        url = f"http://127.0.0.1:{agent.port}/ping/billing/3"
        assert (await call(session, "POST", url, data=body))[0] == 200
        entry = await wait_for_output(session, agent, "billing", "last run failed")
        assert entry["status"] == "fail"
        assert entry["output"].startswith(
            "last run failed (exit 3): charge failed for 3 customers xxx"
        )
        assert entry["output"].endswith("...")
        assert len(agent.inbox.state("billing").message.encode()) == 10 * 1024  # type: ignore[union-attr]
    finally:
        await agent.stop()


async def test_the_ping_token_is_needed_when_set(
    write_config: Any, tmp_path: Path, session: Any
) -> None:
    agent = await started(write_config, agent_yaml(tmp_path / "state.json", TOKEN))
    url = f"http://127.0.0.1:{agent.port}/ping/billing"
    try:
        status, body = await call(session, "POST", url)
        assert (status, body) == (401, {"status": "error", "error": "unauthorized"})
        # Unknown names answer 401 too: no token, no list of check names.
        assert (await call(session, "POST", url + "-x"))[0] == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await call(session, "POST", url, headers=wrong))[0] == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert await call(session, "POST", url, headers=right) == (200, {"ok": True})
        verbose = await call(session, "GET", f"http://127.0.0.1:{agent.port}/health?verbose=1")
        assert TOKEN not in json.dumps(verbose)
    finally:
        await agent.stop()


async def test_a_run_started_before_a_restart_ends_after_it(
    write_config: Any, tmp_path: Path, session: Any
) -> None:
    state_file = tmp_path / "state.json"
    agent = await started(write_config, agent_yaml(state_file))
    url = f"http://127.0.0.1:{agent.port}/ping/billing"
    await call(session, "POST", f"{url}/start?rid=nightly")
    await agent.stop()
    saved = json.loads((tmp_path / "state.json.heartbeats.json").read_text())
    assert list(saved["checks"]["billing"]["open_runs"]) == ["nightly"]

    agent = await started(write_config, agent_yaml(state_file))
    url = f"http://127.0.0.1:{agent.port}/ping/billing"
    try:
        assert agent.inbox.state("billing").open_runs.keys() == {"nightly"}  # type: ignore[union-attr]
        await call(session, "POST", f"{url}?rid=nightly")
        state = agent.inbox.state("billing")
        assert state is not None and state.open_runs == {} and state.duration is not None
    finally:
        await agent.stop()


async def test_a_head_request_is_a_ping_as_healthchecks_io_counts_it(
    write_config: Any, tmp_path: Path, session: Any
) -> None:
    agent = await started(write_config, agent_yaml(tmp_path / "state.json"))
    try:
        async with session.head(f"http://127.0.0.1:{agent.port}/ping/billing/start") as response:
            assert response.status == 200
        state = agent.inbox.state("billing")
        assert state is not None and state.last_start is not None
        async with session.put(f"http://127.0.0.1:{agent.port}/ping/billing") as response:
            assert (response.status, response.headers["Allow"]) == (405, "GET, HEAD, POST")
    finally:
        await agent.stop()
