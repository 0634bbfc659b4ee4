"""The HTTP contract of docs/endpoints.md, asserted on the bytes a client receives."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from probe.contract.config import Config, load_config
from probe.core.model import CheckResult, Observation, Status, Unit
from probe.engine.store import ResultStore
from tests.support import HandClock, web_app

CONFIG = """
agent:
  name: test-probe
  version: 9.9.9
  auth_token: {token}
defaults: {{ interval: 10s, timeout: 2s }}
checks:
  - {{ name: database, type: tcp, host: 127.0.0.1, port: 1, critical: true }}
  - {{ name: redis, type: tcp, host: 127.0.0.1, port: 2, critical: true }}
  - name: external_services
    type: group
    checks:
      - {{ name: paystack, type: tcp, host: 127.0.0.1, port: 3 }}
  - {{ name: app, type: tcp, host: 127.0.0.1, port: 4 }}
"""


def result(
    status: Status, clock: HandClock, output: str = "", ms: float = 15.0, **kw: Any
) -> CheckResult:
    return CheckResult(status, ms / 1000, output, clock.now, **kw)


@pytest.fixture
def config(write_config: Any) -> Config:
    return load_config(write_config(CONFIG.format(token='""')))


@pytest.fixture
def clock() -> HandClock:
    return HandClock(1_700_000_000.0)


@pytest.fixture
def store(config: Config, clock: HandClock) -> ResultStore:
    return ResultStore(config, clock=clock)


@pytest.fixture
async def client(store: ResultStore, aiohttp_client: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(web_app(store))
    return client


def record_all(store: ResultStore, clock: HandClock, status: Status = Status.PASS) -> None:
    paystack = result(status, clock, "" if status is Status.PASS else "HTTP 503 (expected 200)")
    store.record("database", result(Status.PASS, clock, ms=15.4))
    store.record("redis", result(Status.PASS, clock, ms=5))
    group_output = f"paystack: {paystack.output}" if paystack.output else ""
    store.record(
        "external_services",
        result(paystack.status, clock, group_output, members=(("paystack", paystack),)),
    )
    store.record("app", result(Status.PASS, clock))


async def get_json(client: TestClient[Any, Any], path: str, **kw: Any) -> tuple[int, Any]:
    response = await client.get(path, **kw)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    return response.status, json.loads(await response.read())


async def test_health_body_has_exact_keys_in_order(
    client: Any, store: ResultStore, clock: HandClock
) -> None:
    clock.now += 3600.7
    record_all(store, clock)
    status, body = await get_json(client, "/health")
    assert status == 200
    assert list(body) == ["status", "timestamp", "version", "uptime", "checks"]
    assert body["status"] == "healthy"
    assert body["version"] == "9.9.9"
    assert body["uptime"] == 3600
    assert body["timestamp"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now))
    assert body["checks"] == [
        {"name": "database", "status": "pass", "responseTime": 15},
        {"name": "redis", "status": "pass", "responseTime": 5},
        {"name": "external_services", "status": "pass"},
        {"name": "app", "status": "pass", "responseTime": 15},
    ]


async def test_alias_paths_serve_the_same_bodies(
    client: Any, store: ResultStore, clock: HandClock
) -> None:
    record_all(store, clock)
    for plain, alias in [
        ("/health", "/api/health"),
        ("/ready", "/api/health/ready"),
        ("/live", "/api/health/live"),
    ]:
        assert await get_json(client, plain) == await get_json(client, alias)


async def test_non_critical_failure_is_degraded_but_200(
    client: Any, store: ResultStore, clock: HandClock
) -> None:
    record_all(store, clock, Status.FAIL)
    status, body = await get_json(client, "/health")
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"][2] == {
        "name": "external_services",
        "status": "fail",
        "output": "paystack: HTTP 503 (expected 200)",
    }


async def test_critical_failure_is_unhealthy_503_and_not_ready(
    client: Any, store: ResultStore, clock: HandClock
) -> None:
    record_all(store, clock)
    store.record("database", result(Status.FAIL, clock, "connection refused (127.0.0.1:5433)"))
    status, body = await get_json(client, "/health")
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"][0]["output"] == "connection refused (127.0.0.1:5433)"
    status, ready = await get_json(client, "/ready")
    assert status == 503
    assert ready["status"] == "not_ready"
    assert [c["name"] for c in ready["checks"]] == ["database", "redis"]


async def test_warn_is_degraded_and_still_ready(
    client: Any, store: ResultStore, clock: HandClock
) -> None:
    record_all(store, clock)
    store.record("redis", result(Status.WARN, clock, "response_time 700ms > 500ms", ms=700))
    status, body = await get_json(client, "/health")
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"][1] == {
        "name": "redis",
        "status": "warn",
        "responseTime": 700,
        "output": "response_time 700ms > 500ms",
    }
    status, ready = await get_json(client, "/ready")
    assert (status, ready["status"]) == (200, "ready")
    assert list(ready) == ["status", "timestamp", "checks"]


async def test_before_first_results_not_ready_and_checks_say_so(client: Any) -> None:
    status, ready = await get_json(client, "/ready")
    assert (status, ready["status"]) == (503, "not_ready")
    status, body = await get_json(client, "/health")
    assert body["checks"][0] == {"name": "database", "status": "warn", "output": "no result yet"}
    assert body["status"] == "degraded"


async def test_stale_result_fails(client: Any, store: ResultStore, clock: HandClock) -> None:
    record_all(store, clock)
    clock.now += 3 * 10 + 2 + 1  # older than 3 x interval + timeout
    store.render()
    status, body = await get_json(client, "/health")
    assert status == 503
    assert body["checks"][0]["status"] == "fail"
    assert body["checks"][0]["output"].startswith("stale: last result 33s ago")


async def test_live_reports_stalled_scheduler(client: Any, store: ResultStore) -> None:
    status, live = await get_json(client, "/live")
    assert (status, live["status"]) == (200, "alive")
    assert list(live) == ["status", "timestamp", "uptime"]
    store.last_tick -= 31  # default live_timeout is 30s
    status, live = await get_json(client, "/live")
    assert (status, live["status"]) == (503, "stalled")


async def test_head_has_no_body(client: Any, store: ResultStore, clock: HandClock) -> None:
    record_all(store, clock)
    response = await client.head("/health")
    assert response.status == 200
    assert await response.read() == b""


async def test_unknown_path_and_wrong_method_are_json(client: Any) -> None:
    status, body = await get_json(client, "/nope")
    assert status == 404 and "/nope" in body["error"]
    response = await client.post("/health")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert json.loads(await response.read())["error"] == "method POST not allowed"


async def test_verbose_adds_observations_and_members(
    client: Any, store: ResultStore, clock: HandClock
) -> None:
    record_all(store, clock, Status.FAIL)
    obs = Observation("", "response_time", 0.7, Unit.SECONDS, Status.WARN, "> 500ms")
    store.record(
        "redis", result(Status.WARN, clock, "response_time 700ms > 500ms", observations=(obs,))
    )
    _, body = await get_json(client, "/health?verbose=1")
    assert body["checks"][1]["observations"] == [
        {
            "component": None,
            "measure": "response_time",
            "value": 0.7,
            "unit": "s",
            "status": "warn",
            "threshold": "> 500ms",
        }
    ]
    group = body["checks"][2]
    assert group["members"] == [
        {
            "name": "paystack",
            "status": "fail",
            "responseTime": 15,
            "output": "HTTP 503 (expected 200)",
            "observations": [],
        }
    ]
    _, plain = await get_json(client, "/health")
    assert "observations" not in plain["checks"][1]


async def test_verbose_and_metrics_need_the_token(write_config: Any, aiohttp_client: Any) -> None:
    config = load_config(write_config(CONFIG.format(token="s3cret-token")))
    client = await aiohttp_client(web_app(ResultStore(config)))
    assert (await client.get("/health")).status == 200
    assert (await client.get("/ready")).status == 503
    assert (await client.get("/live")).status == 200
    denied = await client.get("/health?verbose=1")
    assert denied.status == 401
    assert (await client.get("/metrics")).status == 401
    auth = {"Authorization": "Bearer s3cret-token"}
    assert (await client.get("/health?verbose=1", headers=auth)).status == 200
    assert (await client.get("/metrics", headers=auth)).status == 200
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.get("/metrics", headers=wrong)).status == 401
    lower = {"Authorization": "bearer s3cret-token"}
    assert (await client.get("/metrics", headers=lower)).status == 200
    assert (await client.get("/metrics", headers={"Authorization": "s3cret-token"})).status == 401
    for path in ("/health", "/health?verbose=1", "/ready", "/live"):
        assert b"s3cret-token" not in await (await client.get(path, headers=auth)).read()


def test_default_config_is_packaged_and_valid() -> None:
    packaged = Path(__file__).parent.parent / "probe" / "default.yaml"
    config = load_config(packaged, environ={})
    names = [c.name for c in config.checks]
    assert names[:4] == ["database", "redis", "external_services", "app"]
    assert (Path(__file__).parent.parent / "config" / "probe.yaml").resolve() == packaged.resolve()
