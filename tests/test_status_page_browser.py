"""/status in a real headless Chromium: one row per check, 90 bars each, the incident
listed, no console errors, readable on a phone, and the same page with JavaScript off.
Screenshots are saved under the test's temp dir."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.agent import Agent
from probe.contract.notification import Kind, Severity
from probe.core.model import Status
from tests import chromium
from tests.history_helpers import alert, feed, sqlite_writer
from tests.status_helpers import agent_yaml, listening, start, until
from tests.support import HandClock


@pytest.fixture(scope="session")
def chromium_binary() -> Iterator[str]:
    binary = chromium.find_or_install()
    if binary is None:
        pytest.skip("chromium is not installed and `apt-get install chromium` failed")
    yield binary


async def seed(path: Path) -> None:
    """Ten days of history before the agent starts: a bad day, a warn day, a gap."""
    clock = HandClock(time.time())
    writer = sqlite_writer(path, clock, ["api", "payments", "search"])
    day = 86400
    for days_back in range(1, 11):
        if days_back == 4:
            continue  # no data that day: a grey bar
        start = (clock.now - days_back * day) // day * day + 3600  # 01:00 that day, UTC
        statuses = [Status.PASS] * 50
        if days_back == 2:
            statuses[10:20] = [Status.FAIL] * 10
        if days_back == 6:
            statuses[:5] = [Status.WARN] * 5
        for check in ("api", "search"):
            feed(writer, check, start, statuses, interval=60, response_time=0.02 + days_back / 1000)
    since = clock.now - 2 * day
    writer.record_alert(alert(Kind.FIRING, "api", since, since + 60, Severity.CRITICAL))
    writer.record_alert(alert(Kind.RESOLVED, "api", since, since + 600, Severity.CRITICAL))
    await writer.flush()
    await writer.stop()


async def running(tmp_path: Path, port: int) -> Agent:
    history = tmp_path / "history.db"
    await seed(history)
    path = tmp_path / "probe.yaml"
    text = agent_yaml(port, f"sqlite://{history}")
    search = f"  - {{ name: search, type: tcp, host: 127.0.0.1, port: {port} }}\n"
    text = text.replace("alerts:", search + "alerts:")
    path.write_text(text)
    agent = await start(path)
    # Until the live incident of `payments` (port 1 refuses) is on the page too.
    await until(lambda: _has_open_incident(agent), timeout=10)
    return agent


async def _has_open_incident(agent: Agent) -> bool:
    agent.site.ensure_fresh()  # as a request to the page would
    return any(i.end is None for i in agent.site.view.snapshot.incidents)


@pytest.mark.timeout(60)
async def test_the_page_in_chromium_shows_rows_bars_and_incidents(
    tmp_path: Path, chromium_binary: str
) -> None:
    async with listening() as port:
        agent = await running(tmp_path, port)
        url = f"http://127.0.0.1:{agent.port}/status"
        try:
            async with chromium.browser(chromium_binary, tmp_path / "profile") as page:
                await page.open(url, 1280, 900, mobile=False)
                rows = await page.evaluate(
                    "[...document.querySelectorAll('section.check')].map(s => ({"
                    "name: s.dataset.check, status: s.dataset.status,"
                    "bars: s.querySelectorAll('rect.bar').length,"
                    "states: [...s.querySelectorAll('rect.bar')].map(b => b.classList[1]).join(''),"
                    "tip: s.querySelector('rect.bar:last-child title').textContent}))"
                )
                incidents = await page.evaluate(
                    "[...document.querySelectorAll('li.incident')].map(li => li.innerText)"
                )
                overall = await page.evaluate("document.querySelector('.overall').innerText")
                marks = await page.evaluate(
                    "document.querySelector('section.check svg.chart')"
                    ".querySelectorAll('polyline, circle').length"
                )
                age = await page.evaluate("document.getElementById('age').textContent")
                await page.screenshot(tmp_path / "status-desktop.png")
                await page.open(url, 390, 844, mobile=True)
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth"
                )
                await page.screenshot(tmp_path / "status-phone.png")
                errors = page.errors
        finally:
            await agent.stop()

    assert [r["name"] for r in rows] == ["api", "payments", "search"]
    assert [r["bars"] for r in rows] == [90, 90, 90]
    api = rows[0]
    assert api["status"] == "pass"
    # Oldest first, today last: 10 days ago is bar 79; 4 days ago (bar 85) had no data.
    # p pass, w warn, f fail, n no data (grey).
    assert api["states"][79:] == "ppppwpnpfpp"
    assert api["states"][:79] == "n" * 79
    assert "up" in api["tip"] and "runs" in api["tip"]
    assert rows[1]["status"] == "fail"
    texts = [t.lower() for t in incidents]  # innerText follows the CSS capitals
    assert any(t.startswith("critical payments up: connection refused") for t in texts), texts
    assert any(t.startswith("critical api up") and "lasted 10m" in t for t in texts), texts
    assert overall == "Degraded"
    assert marks >= 2  # p50 and p95 of the seeded hours are drawn
    assert age.endswith("ago")  # the script ran
    assert overflow <= 0, "the page scrolls sideways on a phone"
    assert errors == []
    for name in ("status-desktop.png", "status-phone.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(60)
async def test_the_page_renders_with_javascript_off(tmp_path: Path, chromium_binary: str) -> None:
    async with listening() as port:
        agent = await running(tmp_path, port)
        url = f"http://127.0.0.1:{agent.port}/status"
        try:
            async with chromium.browser(chromium_binary, tmp_path / "profile") as page:
                await page.open(url, 390, 844, mobile=True, javascript=False)
                dom = await page.html()
                await page.screenshot(tmp_path / "status-no-js.png")
                errors = page.errors
        finally:
            await agent.stop()
    assert errors == []
    assert dom.count('class="check"') == 3
    assert dom.count('class="bar ') == 270
    assert 'class="incident"' in dom
    # The script did not run, and the page still says when it was made, in words.
    assert " UTC</time>" in dom and "s ago</time>" not in dom
