"""F6 and F12: a Slack receiver answering in unusual ways must not make the agent flood
it or its own log, nor post one alert several times.

The agent runs as `probe run` in a child process with a check that always fails; the
receiver is a real HTTP server in the test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.hostile import AgentProcess

WATCH_SECONDS = 6.0


@dataclass
class Receiver:
    """Answers every webhook POST with `answer()`; keeps the arrival times."""

    answer: Callable[[], web.Response]
    hits: list[float] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.hits.append(time.monotonic())
        return self.answer()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0/B0/secretpart"


Answer = Callable[[], web.Response]
Serve = Callable[[Answer], Awaitable[Receiver]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts receivers; cleans them up after the test."""
    runners: list[web.AppRunner] = []

    async def start(answer: Answer) -> Receiver:
        receiver = Receiver(answer)
        app = web.Application()
        app.router.add_post("/services/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        runners.append(runner)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        receiver.port = runner.addresses[0][1]
        return receiver

    yield start
    for runner in runners:
        await runner.cleanup()


def agent_for(tmp_path: Path, receiver: Receiver) -> AgentProcess:
    port = free_port()
    config = tmp_path / "probe.yaml"
    config.write_text(
        f"""
agent: {{ name: f6, listen: "127.0.0.1:{port}" }}
defaults: {{ interval: 1s, timeout: 500ms }}
checks: [ {{ name: down, type: tcp, host: 127.0.0.1, port: 9 }} ]
alerts:
  for: {{ fail: 1s }}
  group_wait: 1s
  notifiers: [ {{ type: slack, webhook_url: "{receiver.url}" }} ]
"""
    )
    return AgentProcess(config, port, tmp_path / "agent.log")


async def watch(agent: AgentProcess, receiver: Receiver) -> tuple[int, list[str]]:
    """Requests the receiver got and the agent's log lines about the notifier, over
    WATCH_SECONDS from the first request."""
    deadline = time.monotonic() + 15
    while not receiver.hits and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert receiver.hits, f"no notification arrived: {agent.log_lines()[-3:]}"
    await asyncio.sleep(WATCH_SECONDS)
    hits = sum(1 for t in receiver.hits if t - receiver.hits[0] <= WATCH_SECONDS)
    return hits, [line for line in agent.log_lines() if "slack" in line]


def http_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


@pytest.mark.parametrize(
    "retry_after",
    ["0", http_date(time.time() - 3600)],
    ids=["zero", "an-hour-ago"],
)
async def test_429_with_a_retry_after_in_the_past_backs_off_and_is_logged_once(
    retry_after: str,
    tmp_path: Path,
    serve: Serve,
) -> None:
    receiver = await serve(lambda: web.Response(status=429, headers={"Retry-After": retry_after}))
    agent = agent_for(tmp_path, receiver).start()
    try:
        hits, lines = await watch(agent, receiver)
    finally:
        assert agent.stop() == 0
    seen = f"{hits} requests in {WATCH_SECONDS:g}s, {len(lines)} log lines"
    print(f"\nF6 Retry-After {retry_after!r}: {seen}")
    # Backoff from 1s doubling: 0, ~1, ~2-3, ~5-6 s; never thousands.
    assert hits <= 6
    assert len(lines) <= 2, lines[:3]


async def test_a_2xx_whose_body_is_not_utf8_counts_as_delivered(
    tmp_path: Path, serve: Serve
) -> None:
    receiver = await serve(lambda: web.Response(body=b"\xff\xfeok\x80", content_type="text/plain"))
    agent = agent_for(tmp_path, receiver).start()
    try:
        hits, lines = await watch(agent, receiver)
    finally:
        assert agent.stop() == 0
    print(f"\nF12: {hits} posts of one alert in {WATCH_SECONDS:g}s, {len(lines)} log lines")
    assert hits == 1
    assert not [line for line in lines if "unexpected" in line or "Traceback" in line]
    assert any("notification sent" in line for line in lines)
