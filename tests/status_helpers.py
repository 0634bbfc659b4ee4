"""A running agent with history, for the status page tests (real sockets throughout)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from probe.agent import Agent
from probe.contract.config import load_config


@asynccontextmanager
async def listening() -> AsyncIterator[int]:
    """A TCP port that accepts: the target of a passing `tcp` check."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def agent_yaml(port: int, history: str, extra_agent: str = "", checks: int = 1) -> str:
    lines = [
        "agent: { name: shop-probe, listen: '127.0.0.1:0', live_timeout: 5s, "
        f"history: '{history}' {extra_agent} }}",
        "defaults: { interval: 1s, timeout: 500ms }",
        "checks:",
        f"  - {{ name: api, type: tcp, host: 127.0.0.1, port: {port}, critical: true }}",
        "  - { name: payments, type: tcp, host: 127.0.0.1, port: 1 }",
    ]
    lines += [
        f"  - {{ name: extra-{i}, type: tcp, host: 127.0.0.1, port: {port} }}"
        for i in range(checks - 1)
    ]
    lines.append("alerts: { for: { warn: 1s, fail: 1s }, group_wait: 1s }")
    return "\n".join(lines) + "\n"


async def start(path: Path) -> Agent:
    agent = Agent(load_config(path), path)
    await agent.start()
    return agent


async def fetch(url: str, **kw: Any) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(url, **kw) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


async def fetch_json(url: str, **kw: Any) -> tuple[int, Any]:
    status, text, _ = await fetch(url, **kw)
    return status, json.loads(text)


async def until(predicate: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s; last: {last!r}")
