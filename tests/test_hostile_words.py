"""F13: failure words that pointed the wrong way, or at nothing.

Each one is read where a user reads it: `probe check`, `probe alert-test` and the
agent's start line, from the real command line against real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.cli_helpers import arun_cli
from tests.conftest import free_port
from tests.hostile import AgentProcess

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def postgres_without_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What PostgreSQL with `ssl = off` answers to a client's SSLRequest: `N`."""
    await reader.readexactly(8)
    writer.write(b"N")
    await writer.drain()
    await reader.read()
    writer.close()


async def reset_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # SO_LINGER 0: the close is a TCP reset


async def cut_short_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    writer.close()


async def test_a_postgres_server_refusing_tls_is_said_to(tmp_path: Path) -> None:
    async with raw_server(postgres_without_tls) as port:
        config = tmp_path / "probe.yaml"
        config.write_text(
            "checks:\n  - name: database\n    type: postgres\n"
            f"    dsn: postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=require\n"
        )
        out = await arun_cli("check", "-c", str(config), "--format", "json")
    entry = json.loads(out.stdout)["checks"][0]
    assert entry["output"] == f"server refused TLS (127.0.0.1:{port})", out.stderr


async def test_notifier_failures_say_reset_and_cut_short_with_no_empty_address(
    tmp_path: Path,
) -> None:
    async with raw_server(reset_after_request) as reset, raw_server(cut_short_answer) as cut:
        config = tmp_path / "probe.yaml"
        config.write_text(
            f"""
checks: []
alerts:
  notifiers:
    - {{ type: slack, webhook_url: "http://127.0.0.1:{reset}/services/T0/B0/x" }}
    - {{ type: slack, token: xoxb-test, channel: "#ops", api_url: "http://127.0.0.1:{cut}/api/" }}
"""
        )
        out = await arun_cli("alert-test", "-c", str(config))
    assert out.code == 1
    assert "connection reset by server" in out.stdout, out.stdout
    assert "connection closed by server (answer cut short)" in out.stdout, out.stdout
    assert "()" not in out.stdout
    assert "connection failed" not in out.stdout


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_the_start_line_writes_an_ipv6_listen_address_in_brackets(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "probe.yaml"
    config.write_text(f'agent: {{ listen: "[::1]:{port}" }}\nchecks: []\n')
    agent = AgentProcess(config, port, tmp_path / "agent.log").start()
    try:
        for _ in range(100):
            started = [line for line in agent.log_lines() if "probe started" in line]
            if started:
                break
            await asyncio.sleep(0.1)
    finally:
        assert agent.stop() == 0
    assert started, agent.log_lines()
    assert json.loads(started[0])["listen"] == f"[::1]:{port}"
