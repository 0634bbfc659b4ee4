"""The running agent against real PostgreSQL and Redis, with faults injected by a proxy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from probe.agent import Agent
from probe.contract.config import load_config
from tests.conftest import free_port
from tests.faultproxy import FaultProxy, Mode
from tests.pg_cluster import Cluster

CANARY = "Canary-Pw-7f3a9"


async def get(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any, float]:
    started = time.monotonic()
    async with session.get(url, **kw) as response:
        body = await response.read()
        elapsed = time.monotonic() - started
        is_json = response.content_type == "application/json"
        return response.status, json.loads(body) if is_json else body.decode(), elapsed


async def wait_for(predicate: Any, timeout: float, step: float = 0.1) -> Any:
    """Poll an async predicate until it returns something truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def check_named(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in body["checks"] if c["name"] == name)


@pytest.fixture(scope="module")
def fresh_pg() -> Iterator[Cluster]:
    """A PostgreSQL of these tests' own, started just before them: what they judge (its
    age, its sessions, its connection slots) never depends on the machine's server."""
    cluster = Cluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
async def pg_proxy(fresh_pg: Cluster) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy("127.0.0.1", fresh_pg.port).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


async def start_agent(write_config: Any, text: str) -> Agent:
    agent = Agent(load_config(write_config(text)))
    await agent.start()
    return agent


def two_checks(pg: FaultProxy, redis_port: int, timeout: str = "1s") -> str:
    return f"""
agent: {{ listen: "127.0.0.1:0", live_timeout: 5s }}
defaults: {{ interval: 2s, timeout: {timeout} }}
checks:
  - name: database
    type: postgres
    dsn: postgresql://postgres@127.0.0.1:{pg.port}/postgres
    critical: true
  - name: redis
    type: redis
    url: redis://127.0.0.1:{redis_port}/0
    critical: true
"""


async def test_blackholed_database_fails_after_timeout_while_endpoints_answer(
    pg_proxy: FaultProxy,
    redis_server: tuple[str, int],
    write_config: Any,
    session: aiohttp.ClientSession,
) -> None:
    agent = await start_agent(write_config, two_checks(pg_proxy, redis_server[1]))
    base = f"http://127.0.0.1:{agent.port}"
    try:

        async def ready() -> bool:
            return (await get(session, f"{base}/ready"))[0] == 200

        await wait_for(ready, 10)
        pg_proxy.set(Mode.BLACKHOLE)
        blackholed_at = time.monotonic()

        async def database_failed() -> dict[str, Any] | None:
            _, body, elapsed = await get(session, f"{base}/health")
            assert elapsed < 0.5, "endpoints must answer from cache while a check hangs"
            live_status, _, _ = await get(session, f"{base}/live")
            assert live_status == 200
            entry = check_named(body, "database")
            return body if entry["status"] == "fail" else None

        body = await wait_for(database_failed, 8, step=0.05)
        # It waits for the next run (<= 2s + jitter) plus exactly the 1s timeout.
        assert time.monotonic() - blackholed_at >= 1.0
        assert check_named(body, "database")["output"] == "timed out after 1s"
        assert check_named(body, "redis")["status"] == "pass"
        assert body["status"] == "unhealthy"

        pg_proxy.set(Mode.FORWARD)
        recovered_at = time.monotonic()

        async def database_passes() -> bool:
            entry = check_named((await get(session, f"{base}/health"))[1], "database")
            return bool(entry["status"] == "pass")

        await wait_for(database_passes, 6)
        assert time.monotonic() - recovered_at < 2 + 1 + 1 + 1.5  # one interval + jitter + timeout
    finally:
        await agent.stop()


async def test_live_stays_up_while_postgres_and_redis_are_down(
    pg_proxy: FaultProxy,
    redis_proxy: FaultProxy,
    write_config: Any,
    session: aiohttp.ClientSession,
) -> None:
    pg_proxy.set(Mode.REFUSE)
    redis_proxy.set(Mode.REFUSE)
    agent = await start_agent(write_config, two_checks(pg_proxy, redis_proxy.port))
    base = f"http://127.0.0.1:{agent.port}"
    try:

        async def both_failed() -> dict[str, Any] | None:
            body = (await get(session, f"{base}/health"))[1]
            return body if all(c["status"] == "fail" for c in body["checks"]) else None

        body = await wait_for(both_failed, 5)
        assert "connection" in check_named(body, "database")["output"]
        assert (await get(session, f"{base}/health"))[0] == 503
        assert (await get(session, f"{base}/ready"))[0] == 503
        status, live, _ = await get(session, f"{base}/live")
        assert (status, live["status"]) == (200, "alive")
    finally:
        await agent.stop()


async def test_slow_database_within_timeout_is_a_warning(
    pg_proxy: FaultProxy,
    redis_server: tuple[str, int],
    write_config: Any,
    session: aiohttp.ClientSession,
) -> None:
    pg_proxy.set(Mode.DELAY, delay=0.15)
    text = two_checks(pg_proxy, redis_server[1], timeout="1.5s").replace(
        "critical: true\n  - name: redis",
        "critical: true\n    warn: { response_time: 100ms }\n  - name: redis",
    )
    agent = await start_agent(write_config, text)
    base = f"http://127.0.0.1:{agent.port}"
    try:

        async def database_judged() -> dict[str, Any] | None:
            entry = check_named((await get(session, f"{base}/health"))[1], "database")
            return (
                entry
                if entry["status"] != "warn" or entry.get("output") != "no result yet"
                else None
            )

        entry = await wait_for(database_judged, 6)
        assert entry["status"] == "warn"
        assert entry["output"].startswith("response_time ")
        assert entry["output"].endswith("> 100ms")
        assert (await get(session, f"{base}/ready"))[0] == 200
    finally:
        await agent.stop()


# ------------------------------------------------------------------ the `probe run` process


def spawn(config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "probe", "run", "-c", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError("probe run did not stop within 10s of SIGTERM") from None
    return process.returncode, err


async def test_sigterm_stops_cleanly_and_logs_are_json(
    redis_server: tuple[str, int], write_config: Any, session: aiohttp.ClientSession
) -> None:
    port = free_port()
    config = write_config(f"""
agent: {{ listen: "127.0.0.1:{port}" }}
checks:
  - name: redis
    type: redis
    url: "redis://127.0.0.1:{redis_server[1]}/0"
    interval: 2s
    timeout: 1s
""")
    process = spawn(config)
    try:

        async def up() -> bool:
            try:
                return (await get(session, f"http://127.0.0.1:{port}/ready"))[0] == 200
            except aiohttp.ClientError:
                return False

        await wait_for(up, 15)
        started = time.monotonic()
        code, err = stop(process)
        assert code == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert {"ts", "level", "msg"} <= set(lines[0])
    assert [entry["msg"] for entry in lines][-1] == "probe stopped"


async def test_sighup_reloads_and_keeps_old_config_when_new_one_is_invalid(
    redis_server: tuple[str, int], write_config: Any, session: aiohttp.ClientSession
) -> None:
    port = free_port()
    redis_check = (
        f'  - {{ name: redis, type: redis, url: "redis://127.0.0.1:{redis_server[1]}/0", '
        "interval: 2s, timeout: 1s }\n"
    )
    head = f'agent: {{ listen: "127.0.0.1:{port}" }}\nchecks:\n'
    config = write_config(head + redis_check)
    process = spawn(config)
    base = f"http://127.0.0.1:{port}"
    try:

        async def names() -> list[str] | None:
            try:
                body = (await get(session, f"{base}/health"))[1]
            except aiohttp.ClientError:
                return None
            return [c["name"] for c in body["checks"]]

        assert await wait_for(names, 15) == ["redis"]
        config.write_text(head + redis_check + redis_check.replace("name: redis", "name: cache"))
        process.send_signal(signal.SIGHUP)

        async def reloaded() -> bool:
            return await names() == ["redis", "cache"]

        await wait_for(reloaded, 5)
        config.write_text(head + redis_check + "  - { name: Bad Name, type: nope }\n")
        process.send_signal(signal.SIGHUP)
        await asyncio.sleep(1)
        assert await names() == ["redis", "cache"]
        assert process.poll() is None

        # A burst of HUPs: reloads never overlap, and the burst costs at most two.
        config.write_text(head + redis_check)
        for _ in range(10):
            process.send_signal(signal.SIGHUP)

        async def back_to_one_check() -> bool:
            return await names() == ["redis"]

        await wait_for(back_to_one_check, 5)
        await asyncio.sleep(1)
        assert process.poll() is None
    finally:
        code, err = stop(process)
    assert code == 0
    messages = [json.loads(line)["msg"] for line in err.splitlines()]
    rejected = [m for m in messages if "reload rejected" in m]
    assert rejected, err
    assert "checks[1].type: unknown check type 'nope'" in rejected[0]
    assert 2 <= messages.count("config reloaded") <= 3  # the first reload, then the burst
    assert "Traceback" not in err
    assert "Unclosed" not in err


async def test_secrets_never_leak_into_endpoints_logs_or_cli(
    write_config: Any, session: aiohttp.ClientSession, aiohttp_server: Any
) -> None:
    from aiohttp import web

    seen_headers: list[str] = []

    async def api(request: web.Request) -> web.Response:
        seen_headers.append(request.headers.get("Authorization", ""))
        return web.Response(status=503, text=f"echo {request.headers.get('Authorization')}")

    app = web.Application()
    app.router.add_get("/", api)
    server = await aiohttp_server(app)
    port = free_port()
    closed = free_port()
    config = write_config(f"""
agent: {{ listen: "127.0.0.1:{port}", auth_token: "{CANARY}-token" }}
defaults: {{ interval: 2s, timeout: 1s }}
checks:
  - name: database
    type: postgres
    dsn: postgresql://app:{CANARY}@127.0.0.1:{closed}/app?sslmode=disable
    critical: true
  - name: api
    type: http
    url: http://127.0.0.1:{server.port}/
    headers: {{ Authorization: "Bearer {CANARY}-header" }}
alerts:
  notifiers:
    - {{ type: slack, webhook_url: "http://127.0.0.1:{closed}/services/{CANARY}-hook" }}
""")
    process = spawn(config, "--log-format", "json")
    auth = {"Authorization": f"Bearer {CANARY}-token"}
    bodies = []
    try:

        async def failing() -> bool:
            try:
                body = (await get(session, f"http://127.0.0.1:{port}/health"))[1]
            except aiohttp.ClientError:
                return False
            return all(c["status"] == "fail" for c in body["checks"])

        await wait_for(failing, 15)
        expected = {
            "/health": 503,
            "/health?verbose=1": 503,
            "/ready": 503,
            "/live": 200,
            "/metrics": 200,
        }  # the critical database is down
        for path, code in expected.items():
            status, body, _ = await get(session, f"http://127.0.0.1:{port}{path}", headers=auth)
            assert status == code, path
            bodies.append(json.dumps(body) if not isinstance(body, str) else body)
    finally:
        _, err = stop(process)
    assert seen_headers and seen_headers[0] == f"Bearer {CANARY}-header"  # it was really sent
    cli = [
        subprocess.run(
            [sys.executable, "-m", "probe", *args, "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        for args in (
            ["check"],
            ["check", "--format", "json"],
            ["check", "--format", "nagios"],
            ["validate"],
        )
    ]
    everything = "\n".join([*bodies, err, *(r.stdout + r.stderr for r in cli)])
    assert "database" in everything and "connection refused" in everything
    assert CANARY not in everything
