"""Maintenance over HTTP, against a running agent: the admin API and what it refuses,
alerts around an API-opened window (a real outage, a Slack stand-in), notes, the Atom
feed, `probe maintenance`, a restart, and the page in a real headless Chromium."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from probe.agent import Agent
from probe.contract.notification import Kind, Severity
from tests import chromium
from tests.cli_helpers import arun_cli
from tests.history_helpers import alert, sqlite_writer
from tests.slack_receiver import SlackReceiver
from tests.status_helpers import listening, start, until

ADMIN = "adm1n-t0ken-for-tests"
READ_ONLY = "read-0nly-t0ken"
ATOM = "{http://www.w3.org/2005/Atom}"


def config_text(port: int, history: str, hook: str = "", extra_agent: str = "") -> str:
    notifier = f'  notifiers: [{{ type: slack, webhook_url: "{hook}" }}]\n' if hook else ""
    return (
        f"agent: {{ name: shop-probe, listen: '127.0.0.1:0', history: '{history}', "
        f"admin_token: {ADMIN}, auth_token: {READ_ONLY} {extra_agent} }}\n"
        "defaults: { interval: 500ms, timeout: 300ms }\n"
        "checks:\n"
        f"  - {{ name: app, type: tcp, host: 127.0.0.1, port: {port}, critical: true }}\n"
        f"  - {{ name: redis, type: tcp, host: 127.0.0.1, port: {port} }}\n"
        f"  - {{ name: queues, type: tcp, host: 127.0.0.1, port: {port}, depends_on: [redis] }}\n"
        "alerts:\n"
        "  for: { warn: 1s, fail: 1s }\n"
        "  resolve_after: 1\n"
        "  group_wait: 200ms\n" + notifier
    )


class Switchable:
    """A TCP port that accepts while `up`, and refuses (closed) while down."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def up(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@pytest.fixture
async def target() -> AsyncIterator[Switchable]:
    server = Switchable()
    await server.up()
    yield server
    await server.down()


async def running(tmp_path: Path, text: str) -> Agent:
    path = tmp_path / "probe.yaml"
    path.write_text(text)
    return await start(path)


async def incidents_loaded(agent: Agent) -> list[dict[str, Any]]:
    """Once history has loaded what it stored before the start."""

    async def listed() -> list[dict[str, Any]]:
        _, body = await call("GET", f"http://127.0.0.1:{agent.port}/api/v1/incidents", None)
        return list(body["incidents"])

    return list(await until(listed, timeout=10))


async def call(
    method: str, url: str, token: str | None = ADMIN, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.request(method, url, headers=headers, data=data) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else text


# ---------------------------------------------------------------- the admin API


async def test_the_admin_api_refuses_what_it_should_and_changes_nothing(
    tmp_path: Path, target: Switchable
) -> None:
    agent = await running(tmp_path, config_text(target.port, "off"))
    base = f"http://127.0.0.1:{agent.port}"
    good = {"checks": ["app"], "duration": "15m", "reason": "deploy"}
    try:
        refused = [
            (await call("POST", f"{base}/api/v1/maintenance", None, good), 401),
            (await call("POST", f"{base}/api/v1/maintenance", "wrong", good), 401),
            (await call("POST", f"{base}/api/v1/maintenance", READ_ONLY, good), 401),
            (await call("POST", f"{base}/api/v1/maintenance", raw=b"\xff\xfe{"), 400),
            (await call("POST", f"{base}/api/v1/maintenance", body=[1]), 400),
            (await call("POST", f"{base}/api/v1/maintenance", body={**good, "duration": "soon"}),
             400),
            (await call("POST", f"{base}/api/v1/maintenance", body={**good, "checks": ["ap"]}),
             400),
            (await call("POST", f"{base}/api/v1/maintenance", body={**good, "duration": "40d"}),
             400),
            (await call("POST", f"{base}/api/v1/maintenance", body={**good, "colour": "red"}),
             400),
            (await call("DELETE", f"{base}/api/v1/maintenance/nosuchwindow"), 404),
            (await call("DELETE", f"{base}/api/v1/maintenance/nosuchwindow", READ_ONLY), 401),
            (await call("POST", f"{base}/api/v1/incidents/nosuchincident/notes",
                        body={"text": "x"}), 404),
        ]  # fmt: skip
        status, listed = await call("GET", f"{base}/api/v1/maintenance", None)
        health = (await call("GET", f"{base}/health", None))[1]
    finally:
        await agent.stop()
    assert [(answer[0], expected) for answer, expected in refused] == [(e, e) for _, e in refused]
    words = [answer[1]["error"] for answer, _ in refused]
    assert words[0] == words[1] == words[2] == "unauthorized"
    assert words[3] == words[4] == "body: expected a JSON object"
    assert words[5] == "duration: expected a duration like 5s or 500ms, got 'soon'"
    assert words[6] == "checks: no check named 'ap'"
    assert words[7] == "duration: more than 0 and at most 31d, got '40d'"
    assert words[8] == "colour: unknown key (known: checks, duration, reason)"
    assert words[9] == "no such maintenance window: nosuchwindow"
    assert words[11] == "no such incident: nosuchincident"
    assert status == 200 and listed["windows"] == []  # nothing was opened
    assert all("maintenance" not in c for c in health["checks"])


async def test_without_an_admin_token_the_api_is_off(tmp_path: Path, target: Switchable) -> None:
    text = config_text(target.port, "off").replace(f"admin_token: {ADMIN}, ", "")
    agent = await running(tmp_path, text)
    try:
        status, body = await call(
            "POST", f"http://127.0.0.1:{agent.port}/api/v1/maintenance", ADMIN, {"duration": "5m"}
        )
    finally:
        await agent.stop()
    assert (status, body["error"]) == (404, "no such endpoint: /api/v1/maintenance")


async def test_a_window_marks_covered_checks_and_their_dependents_in_health(
    tmp_path: Path, target: Switchable
) -> None:
    agent = await running(tmp_path, config_text(target.port, "off"))
    base = f"http://127.0.0.1:{agent.port}"
    try:
        await until(lambda: _ready(base), timeout=10)  # every check has its first result
        status, window = await call(
            "POST", f"{base}/api/v1/maintenance", body={"checks": ["redis"], "duration": "10m"}
        )
        assert status == 201 and window["active"] is True
        health = await until(lambda: _health_with_maintenance(base), timeout=5)
        ready_status, _ = await call("GET", f"{base}/ready", None)
        status, closed = await call("DELETE", f"{base}/api/v1/maintenance/{window['id']}")
        assert (status, closed["active"]) == (200, False)
        after = await until(lambda: _health_without_maintenance(base), timeout=5)
    finally:
        await agent.stop()
    flags = {c["name"]: c.get("maintenance", False) for c in health["checks"]}
    assert flags == {"app": False, "redis": True, "queues": True}
    assert ready_status == 200  # routing is unchanged
    assert all("maintenance" not in c for c in after["checks"])


async def _ready(base: str) -> bool:
    status, _ = await call("GET", f"{base}/ready", None)
    return status == 200


async def _health_with_maintenance(base: str) -> Any:
    _, body = await call("GET", f"{base}/health", None)
    return body if any(c.get("maintenance") for c in body["checks"]) else None


async def _health_without_maintenance(base: str) -> Any:
    _, body = await call("GET", f"{base}/health", None)
    return None if any(c.get("maintenance") for c in body["checks"]) else body


# ---------------------------------------------------------------- alerts around a window


def alert_texts(receiver: SlackReceiver) -> list[str]:
    return [str(body["text"]) for body in receiver.delivered]


@pytest.mark.timeout(60)
async def test_an_outage_inside_an_api_window_sends_nothing_and_one_outlasting_it_fires(
    tmp_path: Path, target: Switchable, receiver: SlackReceiver
) -> None:
    agent = await running(tmp_path, config_text(target.port, "off", receiver.webhook_url))
    base = f"http://127.0.0.1:{agent.port}"
    try:
        # 1: down for 3 s (the alert's `for` is 1 s) and back, inside a 6 s window on
        # every check (all three use the target).
        _, first = await call("POST", f"{base}/api/v1/maintenance", body={"duration": "6s"})
        await target.down()
        await asyncio.sleep(3)
        await target.up()
        await asyncio.sleep(4.5)  # the window ends while all is well
        quiet = list(alert_texts(receiver))
        # 2: down inside a 2 s window and still down when it ends.
        await call("POST", f"{base}/api/v1/maintenance", body={"duration": "2s"})
        await target.down()
        fired = await until(
            lambda: _soon([t for t in alert_texts(receiver) if "CRITICAL app" in t]), timeout=10
        )
        await target.up()
        await until(lambda: _soon([t for t in alert_texts(receiver) if "RESOLVED app" in t]))
    finally:
        await agent.stop()
    assert quiet == []
    assert len(fired) == 1 and "connection refused" in fired[0]
    assert len([t for t in alert_texts(receiver) if "CRITICAL app" in t]) == 1
    assert first["checks"] == []


async def _soon(value: list[str]) -> list[str]:
    return value


# ---------------------------------------------------------------- notes, feed, CLI, restart


async def seeded_history(path: Path) -> str:
    """An incident in history before the agent starts; its id."""
    import time

    now = time.time()
    writer = sqlite_writer(path, lambda: now, ["app", "redis", "queues"])
    since = now - 7200
    writer.record_alert(alert(Kind.FIRING, "app", since, since + 60, Severity.CRITICAL))
    writer.record_alert(alert(Kind.RESOLVED, "app", since, since + 900, Severity.CRITICAL))
    await writer.flush()
    await writer.stop()
    return writer.incidents()[0].id


async def test_notes_windows_and_the_feed(tmp_path: Path, target: Switchable) -> None:
    history = tmp_path / "history.db"
    incident = await seeded_history(history)
    agent = await running(tmp_path, config_text(target.port, f"sqlite://{history}"))
    base = f"http://127.0.0.1:{agent.port}"
    try:
        assert [i["id"] for i in await incidents_loaded(agent)] == [incident]
        status, note = await call(
            "POST",
            f"{base}/api/v1/incidents/{incident}/notes",
            body={"text": "Paystack confirms elevated 5xx\u0000; retries are on."},
        )
        assert status == 201 and note["text"] == "Paystack confirms elevated 5xx ; retries are on."
        bad = await call("POST", f"{base}/api/v1/incidents/{incident}/notes", body={"text": ""})
        _, window = await call(
            "POST",
            f"{base}/api/v1/maintenance",
            body={"checks": ["redis"], "duration": "30m", "reason": "Redis 7.2 upgrade"},
        )
        await asyncio.sleep(2.1)  # the page and feed are rebuilt at most every 2 s
        _, feed_text = await call("GET", f"{base}/status/feed.atom", None)
        _, page = await call("GET", f"{base}/status", None)
    finally:
        await agent.stop()
    assert bad[0] == 400 and bad[1]["error"] == "text: expected a non-empty string"
    root = ET.fromstring(feed_text)
    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{required}") is not None, required
    entries = root.findall(f"{ATOM}entry")
    ids = [e.findtext(f"{ATOM}id") or "" for e in entries]
    updated = [e.findtext(f"{ATOM}updated") or "" for e in entries]
    assert len(ids) == len(set(ids)) == 3
    assert updated == sorted(updated, reverse=True)  # newest first
    for entry in entries:
        for required in ("id", "title", "updated", "content"):
            assert entry.find(f"{ATOM}{required}") is not None
    assert ids[0].endswith(f"/maintenance/{window['id']}")
    assert entries[0].findtext(f"{ATOM}title") == "maintenance: Redis 7.2 upgrade (redis)"
    assert any(i.endswith(f"/incident/{incident}") for i in ids)
    assert any("/note/" in i for i in ids)
    assert '<link rel="alternate" type="application/atom+xml" href="/status/feed.atom"' in page
    assert "Paystack confirms elevated 5xx ; retries are on." in page
    assert "Redis 7.2 upgrade" in page


async def test_probe_maintenance_opens_and_closes_windows_and_they_survive_a_restart(
    tmp_path: Path, target: Switchable
) -> None:
    state = tmp_path / "state.json"
    text = config_text(target.port, "off", extra_agent=f", state_file: '{state}'")
    agent = await running(tmp_path, text)
    config = tmp_path / "probe.yaml"
    url = f"http://127.0.0.1:{agent.port}"
    try:
        opened = await arun_cli(
            "maintenance", "start", "-c", str(config), "--url", url, "--for", "15m",
            "--check", "app", "--reason", "deploy v1.4",
        )  # fmt: skip
        window_id = opened.stdout.split()[0]
        wrong = await arun_cli(
            "maintenance", "end", "-c", str(config), "--url", url, "nosuchwindow"
        )
        refused = await arun_cli(
            "maintenance", "end", "-c", str(config), "--url", url, window_id,
            env={"PROBE_ADMIN_TOKEN": READ_ONLY},
        )  # fmt: skip
    finally:
        await agent.stop()
    assert opened.code == 0, opened.stderr
    assert opened.stdout.strip() == f"{window_id}  maintenance for app for 15m"
    assert (wrong.code, wrong.stderr.strip()) == (
        1,
        "probe maintenance: HTTP 404: no such maintenance window: nosuchwindow",
    )
    assert (refused.code, refused.stderr.strip()) == (
        1,
        "probe maintenance: HTTP 401: unauthorized",
    )
    # A restart keeps the run-time window, and it can still be closed.
    again = await running(tmp_path, text)
    try:
        _, listed = await call("GET", f"http://127.0.0.1:{again.port}/api/v1/maintenance", None)
        closed = await arun_cli(
            "maintenance", "end", "-c", str(config), "--url",
            f"http://127.0.0.1:{again.port}", window_id,
        )  # fmt: skip
    finally:
        await again.stop()
    assert [(w["id"], w["reason"], w["active"]) for w in listed["windows"]] == [
        (window_id, "deploy v1.4", True)
    ]
    assert (closed.code, closed.stdout.strip()) == (0, f"{window_id}  maintenance ended")
    unreachable = await arun_cli(
        "maintenance", "end", "-c", str(config), "--url", "http://127.0.0.1:1", window_id
    )
    assert unreachable.code == 1
    assert unreachable.stderr.startswith("probe maintenance: cannot reach the agent at ")


# ---------------------------------------------------------------- the page in Chromium


@pytest.fixture(scope="session")
def chromium_binary() -> Iterator[str]:
    binary = chromium.find_or_install()
    if binary is None:
        pytest.skip("chromium is not installed and `apt-get install chromium` failed")
    yield binary


@pytest.mark.timeout(90)
async def test_the_page_shows_windows_notes_and_maintenance_bars_in_chromium(
    tmp_path: Path, chromium_binary: str
) -> None:
    history = tmp_path / "history.db"
    incident = await seeded_history(history)
    async with listening() as port:
        agent = await running(tmp_path, config_text(port, f"sqlite://{history}"))
        base = f"http://127.0.0.1:{agent.port}"
        try:
            await incidents_loaded(agent)
            await call(
                "POST", f"{base}/api/v1/maintenance",
                body={"checks": ["redis"], "duration": "30m", "reason": "Redis 7.2 upgrade"},
            )  # fmt: skip
            await call(
                "POST", f"{base}/api/v1/incidents/{incident}/notes",
                body={"text": "Fixed by rolling back the release."},
            )  # fmt: skip
            await asyncio.sleep(2.1)
            async with chromium.browser(chromium_binary, tmp_path / "profile") as page:
                await page.open(f"{base}/status", 1280, 900, mobile=False)
                found = await page.evaluate(
                    "({windows: [...document.querySelectorAll('li.window')].map("
                    "  w => ({active: w.dataset.active, text: w.innerText})),"
                    " notes: [...document.querySelectorAll('li.incident .note')].map("
                    "  n => n.innerText),"
                    " today: Object.fromEntries([...document.querySelectorAll('section.check')]"
                    "  .map(s => [s.dataset.check,"
                    "   [...s.querySelectorAll('rect.bar')].at(-1).classList[1]])),"
                    " legend: document.querySelector('.legend').innerText})"
                )
                await page.screenshot(tmp_path / "maintenance-desktop.png")
                await page.open(f"{base}/status", 390, 844, mobile=True)
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth"
                )
                await page.screenshot(tmp_path / "maintenance-phone.png")
                errors = page.errors
        finally:
            await agent.stop()
    assert errors == []
    assert overflow <= 0, "the page scrolls sideways on a phone"
    assert [w["active"] for w in found["windows"]] == ["true"]
    assert found["windows"][0]["text"].startswith("Redis 7.2 upgrade")
    assert "redis: now, until" in found["windows"][0]["text"]
    assert len(found["notes"]) == 1 and "Fixed by rolling back the release." in found["notes"][0]
    # Today's bar: maintenance for the covered check and its dependent, pass for the app.
    assert found["today"] == {"app": "p", "redis": "m", "queues": "m"}
    assert "maintenance" in found["legend"]
