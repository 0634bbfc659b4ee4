"""One bearer check for every protected route: whatever is wrong with the token, a client
gets the same 401, never a 500, from every route that needs one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from probe.agent import Agent
from probe.contract.config import load_config
from tests.support import route_table

AUTH = "agent-token-8812"
PING = "ping-token-3390"
ADMIN = "admin-token-5521"
CONFIG = f"""
agent: {{ listen: "127.0.0.1:0", history: "off", status_page: token,
         auth_token: "{AUTH}", ping_token: "{PING}", admin_token: "{ADMIN}" }}
checks:
  - {{ name: db, type: tcp, host: 127.0.0.1, port: 1 }}
  - {{ name: billing, type: heartbeat, every: 1h }}
"""
# Every route that needs a token, with a concrete path and what it takes to ask it.
PROTECTED: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/health?verbose=1", {}),
    ("GET", "/api/health?verbose=1", {}),
    ("GET", "/health", {"Accept": "application/health+json"}),
    ("GET", "/metrics", {}),
    ("GET", "/status", {}),
    ("GET", "/api/v1/uptime", {}),
    ("GET", "/api/v1/incidents", {}),
    ("GET", "/api/v1/checks/db/history", {}),
    ("GET", "/badge/db/status.svg", {}),
    ("GET", "/badge/db/uptime/24h.svg", {}),
    ("POST", "/ping/billing", {}),
    ("GET", "/ping/billing/start", {}),
    ("GET", "/status/feed.atom", {}),
    ("GET", "/api/v1/maintenance", {}),
    ("POST", "/api/v1/maintenance", {}),
    ("DELETE", "/api/v1/maintenance/x1", {}),
    ("POST", "/api/v1/incidents/x1/notes", {}),
]
# The admin API's writes take the admin token; with it, these empty requests get past the
# check to the handler's own answer.
ADMIN_ANSWERS = {
    ("POST", "/api/v1/maintenance"): 400,  # duration: required
    ("DELETE", "/api/v1/maintenance/x1"): 404,  # no such maintenance window
    ("POST", "/api/v1/incidents/x1/notes"): 404,  # no such incident
}
# What a token can be wrong by: not UTF-8 (R9: /status answered 500), far too long,
# simply wrong, a right token under another scheme, missing.
WRONG: dict[str, bytes | None] = {
    "not utf-8": b"Bearer \xff\xfe\x80",
    "over-long": b"Bearer " + b"A" * 6000,
    "wrong": b"Bearer not-the-token",
    "basic scheme": b"Basic " + AUTH.encode(),
    "missing": None,
}
EXPECTED_BODY = {"status": "error", "error": "unauthorized"}


@pytest.fixture
async def agent(write_config: Any) -> AsyncIterator[Agent]:
    agent = Agent(load_config(write_config(CONFIG), environ={}))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


async def raw(
    port: int, method: str, path: str, headers: dict[str, str], authorization: bytes | None
) -> tuple[int, dict[str, str], bytes]:
    """One request written byte for byte (a client library would refuse non-UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: probe", b"Connection: close"]
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    if authorization is not None:
        lines.append(b"Authorization: " + authorization)
    if method == "POST":
        lines.append(b"Content-Length: 0")
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), fields, body


def test_the_list_covers_every_protected_route() -> None:
    """A route added to the table without a place here fails this test."""
    open_routes = {"/ready", "/api/health/ready", "/live", "/api/health/live"}
    open_routes |= {"/health/{check}", "/ready/{check}"}
    templates = {p for route in route_table() for p in route.paths} - open_routes
    concrete = {path.partition("?")[0] for _, path, _ in PROTECTED}
    for template in templates:
        pattern = template.replace("{check}", "db").replace("{name}", "db")
        pattern = pattern.replace("{window}", "24h").replace("{action}", "start")
        pattern = pattern.replace("{id}", "x1")
        if template.startswith("/ping/"):
            pattern = pattern.replace("/db", "/billing")
        assert pattern in concrete, f"{template} is not tried with wrong tokens"


@pytest.mark.parametrize("wrong", list(WRONG))
async def test_every_protected_route_gives_the_same_401(agent: Agent, wrong: str) -> None:
    answers = []
    for method, path, headers in PROTECTED:
        status, fields, body = await raw(agent.port, method, path, headers, WRONG[wrong])
        assert status == 401, f"{method} {path} with a {wrong} token: {status} {body[:200]!r}"
        assert fields["www-authenticate"] == 'Bearer realm="probe"', path
        assert fields["cache-control"] == "no-store", path
        assert fields["content-type"].startswith("application/json"), path
        assert json.loads(body) == EXPECTED_BODY, path
        answers.append(body)
    assert len(set(answers)) == 1  # the same bytes, not only the same JSON


async def test_the_right_tokens_open_every_protected_route(agent: Agent) -> None:
    for method, path, headers in PROTECTED:
        token = PING if path.startswith("/ping/") else AUTH
        expected = ADMIN_ANSWERS.get((method, path), 200)
        if (method, path) in ADMIN_ANSWERS:
            token = ADMIN
        status, _, body = await raw(agent.port, method, path, headers, f"Bearer {token}".encode())
        assert status == expected, f"{method} {path}: {status} {body[:200]!r}"
    # Pages opened from a bookmark cannot send a header: `?token=` opens the status page.
    status, _, _ = await raw(agent.port, "GET", f"/status?token={AUTH}", {}, None)
    assert status == 200
    status, _, _ = await raw(agent.port, "GET", "/status?token=%FF%FE", {}, None)
    assert status == 401
