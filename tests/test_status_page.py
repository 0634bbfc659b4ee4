"""/status, the history JSON endpoints and the badges of a running agent, over real
sockets: what they show, who may see them, and that secrets never appear."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from probe.agent import Agent
from tests.status_helpers import agent_yaml, fetch, fetch_json, listening, start, until


def base(agent: Agent) -> str:
    return f"http://127.0.0.1:{agent.port}"


async def an_incident(agent: Agent) -> list[dict[str, Any]]:
    status, body = await fetch_json(base(agent) + "/api/v1/incidents")
    assert status == 200
    found: list[dict[str, Any]] = body["incidents"]
    return found


async def test_json_endpoints_and_badges_show_uptime_and_incidents(tmp_path: Path) -> None:
    async with listening() as port:
        path = tmp_path / "probe.yaml"
        path.write_text(agent_yaml(port, f"sqlite://{tmp_path}/history.db"))
        agent = await start(path)
        try:
            (incident,) = await until(lambda: an_incident(agent))
            status, uptime = await fetch_json(base(agent) + "/api/v1/uptime")
            code, history = await fetch_json(base(agent) + "/api/v1/checks/api/history?window=24h")
            _, svg, svg_headers = await fetch(base(agent) + "/badge/payments/status.svg")
            _, up_svg, _ = await fetch(base(agent) + "/badge/api/uptime/7d.svg")
            _, page, page_headers = await fetch(base(agent) + "/status")
        finally:
            await agent.stop()

    assert status == 200 and uptime["windows"] == ["24h", "7d", "30d", "90d"]
    by_name = {c["name"]: c for c in uptime["checks"]}
    assert list(by_name) == ["api", "payments"]
    assert by_name["api"]["uptime"]["24h"] == 1.0 and by_name["api"]["status"] == "pass"
    assert by_name["payments"]["uptime"]["90d"] == 0.0
    assert incident["check"] == "payments" and incident["measure"] == "up"
    assert incident["severity"] == "critical" and incident["end"] is None
    assert "connection refused" in incident["summary"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", incident["start"])
    assert code == 200 and history["resolution"] == "1h" and len(history["points"]) == 24
    assert history["points"][-1]["pass"] >= 1 and history["uptime"] == 1.0
    assert svg_headers["Content-Type"] == "image/svg+xml" and ">failing<" in svg
    assert ">100%<" in up_svg
    assert page_headers["Content-Type"].startswith("text/html")
    assert page_headers["Cache-Control"] == "no-store"
    assert page.count('class="check"') == 2 and "shop-probe" in page


async def test_history_and_incidents_are_on_the_page_after_a_restart(tmp_path: Path) -> None:
    async with listening() as port:
        path = tmp_path / "probe.yaml"
        path.write_text(agent_yaml(port, f"sqlite://{tmp_path}/history.db"))
        first = await start(path)
        try:
            (before,) = await until(lambda: an_incident(first))
            _, uptime = await fetch_json(base(first) + "/api/v1/checks/api/history?window=24h")
        finally:
            await first.stop()
        runs_before = uptime["points"][-1]["pass"]

        second = await start(path)
        try:
            # No state file: the alert fires anew, but the first one is still listed.
            listed = await until(lambda: _with_start(second, before["start"]), timeout=5)
            _, after = await fetch_json(base(second) + "/api/v1/checks/api/history?window=24h")
            _, page, _ = await fetch(base(second) + "/status")
        finally:
            await second.stop()
    assert listed["summary"] == before["summary"]
    assert after["points"][-1]["pass"] >= runs_before
    assert page.count('class="incident"') >= 1 and "payments" in page


async def _with_start(agent: Agent, start: str) -> dict[str, Any] | None:
    return next((i for i in await an_incident(agent) if i["start"] == start), None)


async def test_token_mode_wants_the_token_and_never_shows_it(tmp_path: Path) -> None:
    token = "Tok-3f9a-secret"
    async with listening() as port:
        path = tmp_path / "probe.yaml"
        extra = f", status_page: token, auth_token: {token}"
        path.write_text(agent_yaml(port, f"sqlite://{tmp_path}/h.db", extra))
        agent = await start(path)
        try:
            denied = [
                (await fetch(base(agent) + p))[0]
                for p in ("/status", "/api/v1/uptime", "/badge/api/status.svg")
            ]
            bearer = {"Authorization": f"Bearer {token}"}
            ok_header, page, _ = await fetch(base(agent) + "/status", headers=bearer)
            ok_query, _, _ = await fetch(base(agent) + f"/api/v1/incidents?token={token}")
            wrong, _, _ = await fetch(base(agent) + "/status?token=nope")
            health, _, _ = await fetch(base(agent) + "/health")
        finally:
            await agent.stop()
    assert denied == [401, 401, 401]
    assert ok_header == 200 and ok_query == 200 and wrong == 401 and health in (200, 503)
    assert token not in page


async def test_status_page_off_serves_nothing(tmp_path: Path) -> None:
    async with listening() as port:
        path = tmp_path / "probe.yaml"
        path.write_text(agent_yaml(port, "off", ", status_page: off"))
        agent = await start(path)
        try:
            codes = [
                (await fetch(base(agent) + p))[0]
                for p in ("/status", "/api/v1/uptime", "/badge/api/status.svg")
            ]
        finally:
            await agent.stop()
    assert codes == [404, 404, 404]


async def test_bad_requests_get_one_clear_json_error(tmp_path: Path) -> None:
    async with listening() as port:
        path = tmp_path / "probe.yaml"
        path.write_text(agent_yaml(port, f"sqlite://{tmp_path}/h.db"))
        agent = await start(path)
        try:
            unknown = await fetch_json(base(agent) + "/api/v1/checks/nope/history")
            window = await fetch_json(base(agent) + "/api/v1/checks/api/history?window=5y")
            badge = await fetch_json(base(agent) + "/badge/api/uptime/1y.svg")
            post, _, headers = await _post(base(agent) + "/status")
        finally:
            await agent.stop()
    assert unknown == (404, {"status": "error", "error": "no such check: nope"})
    assert window[0] == 400
    assert window[1]["error"] == "window must be one of 24h, 7d, 30d, 90d, 400d, got '5y'"
    assert badge[0] == 404 and "24h, 7d, 30d, 90d" in badge[1]["error"]
    assert post == 405 and headers["Allow"] == "GET, HEAD"


async def _post(url: str) -> tuple[int, str, dict[str, str]]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(url) as response:
        return response.status, await response.text(), dict(response.headers)


async def test_a_wrong_dsn_costs_a_line_and_a_metric_and_never_shows_its_password(
    tmp_path: Path, caplog: Any
) -> None:
    import logging

    password = "Hist-Pw-91c2"
    async with listening() as port:
        path = tmp_path / "probe.yaml"
        path.write_text(agent_yaml(port, f"postgresql://probe:{password}@127.0.0.1:1/history"))
        with caplog.at_level(logging.INFO):
            agent = await start(path)
            try:
                page = await until(lambda: _page_saying(agent, "connection refused"), timeout=10)
                health, _, _ = await fetch(base(agent) + "/health")
                auth = {"Authorization": "Bearer x"}
                _, metrics, _ = await fetch(base(agent) + "/metrics", headers=auth)
                uptime = await until(lambda: _uptime_with_results(agent), timeout=5)
            finally:
                await agent.stop()
    assert health == 200  # degraded (payments fails, it is not critical), serving as ever
    assert "probe_history_up 0.0" in metrics
    assert uptime["checks"][0]["status"] == "pass"
    history_lines = [r.getMessage() for r in caplog.records if r.name == "probe.history"]
    assert any("unavailable: connection refused (127.0.0.1:1)" in m for m in history_lines)
    for text in [page, metrics, *history_lines, *(r.getMessage() for r in caplog.records)]:
        assert password not in text


async def _page_saying(agent: Agent, words: str) -> str | None:
    _, page, _ = await fetch(base(agent) + "/status")
    return page if words in page else None


async def _uptime_with_results(agent: Agent) -> dict[str, Any] | None:
    _, body = await fetch_json(base(agent) + "/api/v1/uptime")
    return body if body["checks"][0]["status"] is not None else None


async def test_a_reload_turns_the_page_off_and_on(tmp_path: Path) -> None:
    async with listening() as port:
        path = tmp_path / "probe.yaml"
        history = f"sqlite://{tmp_path}/h.db"
        path.write_text(agent_yaml(port, history))
        agent = await start(path)
        try:
            before = (await fetch(base(agent) + "/status"))[0]
            path.write_text(agent_yaml(port, history, ", status_page: off"))
            assert await agent.reload()
            off = (await fetch(base(agent) + "/status"))[0]
            path.write_text(agent_yaml(port, history))
            assert await agent.reload()
            on = (await fetch(base(agent) + "/api/v1/uptime"))[0]
        finally:
            await agent.stop()
    assert (before, off, on) == (200, 404, 200)
