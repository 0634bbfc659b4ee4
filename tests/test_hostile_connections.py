"""F1: idle and slowloris connections must not take /live and /ready down.

The agent runs as a child process under `ulimit -n 1024`, the soft and hard limit that
Docker 25+ and containerd 2 give a container, while another process holds 1,100 idle
and 500 slowloris connections to its port.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.agent import Agent
from probe.contract.config import load_config
from tests.conftest import free_port
from tests.hostile import AgentProcess, Poll, held_report, hold_connections

ULIMIT_1024 = ("sh", "-c", 'ulimit -n 1024 && exec "$@"', "sh")


def agent_config(tmp_path: Path, port: int, redis_port: int) -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(
        f"""
agent: {{ name: f1, listen: "127.0.0.1:{port}" }}
defaults: {{ interval: 2s, timeout: 1s }}
checks:
  - {{ name: redis, type: redis, url: "redis://127.0.0.1:{redis_port}/0", critical: true }}
"""
    )
    return path


async def test_idle_and_slowloris_connections_leave_live_and_ready_answering(
    tmp_path: Path, redis_server: tuple[str, int]
) -> None:
    port = free_port()
    agent = AgentProcess(
        agent_config(tmp_path, port, redis_server[1]), port, tmp_path / "agent.log", ULIMIT_1024
    ).start()
    try:
        # /ready is 503 until the first result is in: the attack starts after that.
        await agent.wait_until_ready()
        lines_before = len(agent.log_lines())
        idle = hold_connections(port, 1100, 12, "idle")
        slowloris = hold_connections(port, 500, 12, "slowloris", gap=2)
        try:
            poll = await Poll().run(port, ["/live", "/ready"], seconds=12, gap=0.25)
        finally:
            held = {"idle": held_report(idle), "slowloris": held_report(slowloris)}
        grown = len(agent.log_lines()) - lines_before
        print(f"\nF1: {poll.summary()}; log grew by {grown} lines; held: {held}")

        assert poll.failures() == [], poll.summary()
        assert grown <= 3, agent.log_lines()[lines_before:][:5]
        for report in held.values():
            # Nothing the holder opened outlived the keep-alive / header deadline by much.
            assert report["still_open_at_end"] == 0
            assert report["longest_closed_after"] < 8
    finally:
        assert agent.stop() == 0


async def test_the_soft_open_file_limit_is_raised_to_the_hard_limit(
    tmp_path: Path, redis_server: tuple[str, int]
) -> None:
    port = free_port()
    soft_256 = ("sh", "-c", 'ulimit -Sn 256 && ulimit -Hn 4096 && exec "$@"', "sh")
    agent = AgentProcess(
        agent_config(tmp_path, port, redis_server[1]), port, tmp_path / "agent.log", soft_256
    ).start()
    try:
        await agent.wait_until_serving()
        assert agent.process is not None
        limits = Path(f"/proc/{agent.process.pid}/limits").read_text()
        found = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
        assert found is not None
        assert found.groups() == ("4096", "4096")
    finally:
        assert agent.stop() == 0


async def test_out_of_descriptors_the_accept_failure_is_logged_once(
    tmp_path: Path, redis_server: tuple[str, int]
) -> None:
    # 64 descriptors: a connection flood runs the agent out of them however it caps its
    # connections, which is what this test needs to see.
    port = free_port()
    ulimit_64 = ("sh", "-c", 'ulimit -n 64 && exec "$@"', "sh")
    agent = AgentProcess(
        agent_config(tmp_path, port, redis_server[1]), port, tmp_path / "agent.log", ulimit_64
    ).start()
    try:
        await agent.wait_until_serving()
        lines_before = len(agent.log_lines())
        idle = hold_connections(port, 400, 6, "idle")
        try:
            poll = await Poll().run(port, ["/live"], seconds=6, gap=0.25)
        finally:
            held_report(idle)
        after = await Poll().run(port, ["/live"], seconds=1, gap=0.25)
        new_lines = agent.log_lines()[lines_before:]
        print(
            f"\nF1 at 64 descriptors: {poll.summary()}; log grew by {len(new_lines)}: {new_lines}"
        )

        assert len(new_lines) <= 2, new_lines[:3]
        assert all("Traceback" not in line for line in new_lines)
        assert after.failures() == [], after.summary()
    finally:
        assert agent.stop() == 0


async def raw_request(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("path", ["/metrics", "/health?verbose=1"])
async def test_a_token_that_is_not_utf8_is_refused_with_401(
    path: str, write_config: Callable[[str], Path]
) -> None:
    config = write_config(
        'agent: { listen: "127.0.0.1:0", auth_token: s3cret }\n'
        "checks: [ { name: dep, type: tcp, host: 127.0.0.1, port: 9 } ]\n"
    )
    agent = Agent(load_config(config))
    await agent.start()
    try:
        head = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
        answer = await raw_request(agent.port, head + b"Authorization: Bearer \xff\xfe\r\n\r\n")
    finally:
        await agent.stop()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 401 Unauthorized"
    assert b'{"status": "error", "error": "unauthorized"}' in rest
