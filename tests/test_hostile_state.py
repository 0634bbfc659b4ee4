"""State files someone else touched: the alert state and `<state_file>.heartbeats.json` go
through one hardened reader. Deep nesting, NaN or infinity, times from the future, 300,000
open runs, a FIFO at the path or a read that never returns: one line, and the agent runs
(and listens, and stops on SIGTERM) without that state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from probe.core import statefile
from probe.engine.alerts.state import load_state
from probe.engine.pings import Inbox
from tests.conftest import free_port
from tests.hostile import AgentProcess, probe_get

NOW = 1_800_000_000.0


def heartbeat_file(checks: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "checks": checks})


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"version":1,"checks":' + "[" * 200_000 + "]" * 200_000 + "}", "nested too deeply"),
        (
            '{"version":1,"checks":{"hb":{"since":1.0,"last_success":Infinity,"open_runs":{}}}}',
            "Infinity is not a number a state file may hold",
        ),
        (
            '{"version":1,"checks":{"hb":{"since":NaN,"open_runs":{}}}}',
            "NaN is not a number a state file may hold",
        ),
        (
            '{"version":1,"checks":{"hb":{"since":1.0,"last_success":1e999}}}',
            "a number in it is not finite",
        ),
        (
            heartbeat_file({"hb": {"since": 1.0, "last_success": NOW + 86400}}),
            "check 'hb': last_success is in the future",
        ),
        (heartbeat_file({"hb": {"since": "yesterday"}}), "check 'hb': 'yesterday' is not a time"),
        (
            heartbeat_file({"hb": {"since": 1.0, "exit_code": 999}}),
            "check 'hb': exit_code is not 0-255",
        ),
        (heartbeat_file({"hb": {}}), "check 'hb': 'since' is missing"),
        ("[1, 2]", "not a probe heartbeat state file (unknown version)"),
        ('{"version":1,"checks":{"hb":', "not JSON: Expecting value (line 1)"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
    ],
    ids=[
        "deep-nesting",
        "infinity",
        "nan",
        "1e999",
        "future",
        "not-a-time",
        "exit-code",
        "missing-since",
        "not-ours",
        "truncated",
        "not-utf8",
    ],
)
async def test_a_bad_heartbeat_file_is_one_line_and_the_checks_wait_afresh(
    tmp_path: Path, text: str | bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json.heartbeats.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    inbox = Inbox(str(path), clock=lambda: NOW)
    inbox.configure(["hb"])
    await inbox.load()
    state = inbox.state("hb")
    assert state is not None
    assert (state.since, state.last_success) == (NOW, None)
    lines = [r.getMessage() for r in caplog.records if "heartbeat state file" in r.getMessage()]
    assert lines == [
        f"ignoring heartbeat state file {path}: {why}; heartbeat checks start waiting afresh"
    ]


async def test_open_runs_beyond_the_cap_keep_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "state.json.heartbeats.json"
    runs = {f"r{i}": NOW - 300_000 + i for i in range(300_000)}
    path.write_text(heartbeat_file({"hb": {"since": 1.0, "open_runs": runs}}))
    inbox = Inbox(str(path), clock=lambda: NOW)
    await inbox.load()
    state = inbox.state("hb")
    assert state is not None
    assert sorted(state.open_runs) == sorted(f"r{i}" for i in range(300_000 - 64, 300_000))


async def test_a_ping_body_with_control_characters_is_stored_without_them() -> None:
    inbox = Inbox(clock=lambda: NOW)
    inbox.configure(["hb"])
    inbox.record("hb", "fail", 1, "", "first line\nsecond\x00line\x1b[31m\x7f\tend")
    state = inbox.state("hb")
    assert state is not None
    assert state.message == "first line\nsecond\ufffdline\ufffd[31m\ufffd\tend"


def test_the_alert_state_file_says_what_is_wrong_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    os.mkfifo(path)
    started = time.monotonic()
    assert load_state(path) is None
    assert time.monotonic() - started < 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert (
        line == f"ignoring alert state file {path}: not a regular file; alerts start from scratch"
    )


async def test_a_read_that_never_returns_is_given_up_after_the_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read stuck in the kernel (a dead NFS server) behaves like this: it never returns.
    release = threading.Event()

    def hung_read(path: Path) -> str | None:
        release.wait(30)
        return None

    monkeypatch.setattr(statefile, "read_text", hung_read)
    path = tmp_path / "state.json"
    started = time.monotonic()
    try:
        found = await statefile.load_off_loop(path, "alert state file", dict, "no state", 0.5)
    finally:
        release.set()
    assert found is None
    assert 0.5 <= time.monotonic() - started < 1.5
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        f"ignoring alert state file {path}: not read within 0.5s (a hung volume?); no state"
    )


# ---------------------------------------------------------------- the real agent


def agent_yaml(port: int, state_file: Path) -> str:
    return f"""
agent: {{ name: st, listen: "127.0.0.1:{port}", state_file: "{state_file}", history: "off" }}
checks:
  - {{ name: hb, type: heartbeat, every: 2s, grace: 1s, interval: 1s, timeout: 500ms }}
"""


def messages(agent: AgentProcess) -> list[str]:
    found = []
    for line in agent.log_lines():
        try:
            found.append(str(json.loads(line)["msg"]))
        except (ValueError, KeyError, TypeError):
            found.append(line)
    return found


async def hb_entry(base: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
        session.get(f"{base}/health?verbose=1") as response,
    ):
        body = await response.json()
    return dict(body["checks"][0])


@pytest.mark.timeout(60)
async def test_fifos_at_both_state_paths_the_agent_serves_and_stops(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "st" / "state.json"
    state.parent.mkdir()
    os.mkfifo(state)
    os.mkfifo(f"{state}.heartbeats.json")
    config = tmp_path / "probe.yaml"
    config.write_text(agent_yaml(port, state))
    agent = AgentProcess(config, port, tmp_path / "agent.log").start()
    try:
        await agent.wait_until_serving(10)
        assert (await probe_get(port, "/live"))[0] == 200
    finally:
        started = time.monotonic()
        code = agent.stop()
    assert code == 0
    assert time.monotonic() - started < 8
    said = messages(agent)
    assert f"ignoring alert state file {state}: not a regular file; alerts start from scratch" in (
        said
    )
    assert (
        f"ignoring heartbeat state file {state}.heartbeats.json: not a regular file; "
        "heartbeat checks start waiting afresh"
    ) in said
    assert not [m for m in said if "Traceback" in m or "internal error" in m]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    [
        '{"version":1,"checks":' + "[" * 200_000 + "]" * 200_000 + "}",
        '{"version":1,"checks":{"hb":{"since":1.0,"last_success":Infinity,"open_runs":{}}}}',
    ],
    ids=["deep-nesting", "infinity"],
)
async def test_a_poisoned_heartbeat_file_neither_crashes_nor_silences_the_switch(
    tmp_path: Path, text: str
) -> None:
    port = free_port()
    state = tmp_path / "state.json"
    Path(f"{state}.heartbeats.json").write_text(text)
    config = tmp_path / "probe.yaml"
    config.write_text(agent_yaml(port, state))
    agent = AgentProcess(config, port, tmp_path / "agent.log").start()
    try:
        await agent.wait_until_serving(10)
        entry: dict[str, Any] = {}
        for _ in range(80):  # no pings: due 2 s after start, failing 1 s later
            entry = await hb_entry(agent.base)
            if entry["status"] == "fail":
                break
            await asyncio.sleep(0.1)
        assert entry["status"] == "fail", entry
        assert entry["output"].startswith("no ping since the agent began watching")
    finally:
        assert agent.stop() == 0
    saved = json.loads(Path(f"{state}.heartbeats.json").read_text())
    assert saved["checks"]["hb"]["last_success"] is None  # not written back


def test_loader_logs_through_probe_state(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "probe.state")
    assert statefile.load("/nonexistent/state.json", "alert state file", dict, "x") is None
    assert caplog.records == []  # no file is no problem
