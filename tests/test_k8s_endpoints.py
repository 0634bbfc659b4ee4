"""Kubernetes' and the IETF health draft's conventions, over a real socket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from probe.contract.config import Config, load_config
from probe.core.model import CheckResult, Observation, Status, Unit
from probe.engine.store import ResultStore
from tests.support import Renders, web_app

CONFIG = """
agent: {{ name: k8s-probe, version: 2.0.1, auth_token: {token} }}
defaults: {{ interval: 10s, timeout: 2s }}
checks:
  - {{ name: database, type: tcp, host: 127.0.0.1, port: 1, critical: true }}
  - {{ name: openai, type: tcp, host: 127.0.0.1, port: 2, critical: true }}
  - name: external_services
    type: group
    checks:
      - {{ name: paystack, type: tcp, host: 127.0.0.1, port: 3 }}
  - {{ name: queues, type: tcp, host: 127.0.0.1, port: 4 }}
"""
HEALTH_JSON = "application/health+json"
NOW = 1_760_000_000.0


def store_for(write_config: Any, token: str = '""') -> ResultStore:
    config: Config = load_config(write_config(CONFIG.format(token=token)))
    store = ResultStore(config, clock=lambda: NOW)
    slow = Observation("email", "backlog", 1240.0, Unit.COUNT, Status.WARN, "> 1,000")
    store.record("database", CheckResult(Status.PASS, 0.0154, "", NOW))
    store.record("openai", CheckResult(Status.FAIL, 2.0, "timed out after 2s", NOW))
    paystack = CheckResult(Status.PASS, 0.2, "", NOW)
    store.record(
        "external_services",
        CheckResult(Status.PASS, 0.2, "", NOW, members=(("paystack", paystack),)),
    )
    store.record(
        "queues", CheckResult(Status.WARN, 0.003, "email backlog 1,240 > 1,000", NOW, (slow,))
    )
    return store


@pytest.fixture
async def client(write_config: Any, aiohttp_client: Any) -> TestClient[Any, Any]:
    app = web_app(store_for(write_config))
    made: TestClient[Any, Any] = await aiohttp_client(app)
    return made


async def get(client: TestClient[Any, Any], path: str, **kw: Any) -> tuple[int, str, Any]:
    response = await client.get(path, **kw)
    assert response.headers["Cache-Control"] == "no-store"
    return response.status, response.headers["Content-Type"], json.loads(await response.read())


async def test_ready_excluding_a_failing_dependency_is_ready(client: TestClient[Any, Any]) -> None:
    status, _, body = await get(client, "/ready")
    assert (status, body["status"]) == (503, "not_ready")
    status, _, body = await get(client, "/ready?exclude=openai")
    assert (status, body["status"]) == (200, "ready")
    assert [c["name"] for c in body["checks"]] == ["database"]
    assert body["excluded"] == ["openai"]
    assert "unknown" not in body


async def test_ready_exclude_is_repeatable_and_reports_unknown_names(
    client: TestClient[Any, Any],
) -> None:
    status, _, body = await get(client, "/ready?exclude=openai&exclude=database&exclude=opneai")
    assert (status, body["checks"]) == (200, [])
    assert body["excluded"] == ["database", "openai"]
    assert body["unknown"] == ["opneai"]
    # A typo alone excludes nothing: still not ready, and it says why.
    status, _, body = await get(client, "/api/health/ready?exclude=opneai")
    assert (status, body["unknown"], body["excluded"]) == (503, ["opneai"], [])


async def test_one_check_each_under_health_and_ready(client: TestClient[Any, Any]) -> None:
    assert await get(client, "/health/database") == (
        200,
        "application/json",
        {"name": "database", "status": "pass", "responseTime": 15},
    )
    status, _, body = await get(client, "/health/openai")
    assert (status, body["output"]) == (503, "timed out after 2s")
    status, _, body = await get(client, "/ready/queues")
    assert (status, body["status"]) == (200, "warn")
    status, _, body = await get(client, "/health/paystack")  # a group member
    assert (status, body["name"], body["status"]) == (200, "paystack", "pass")
    status, _, body = await get(client, "/ready/nope")
    assert status == 404 and body["error"] == "no such check: nope"


async def test_ready_for_one_check_waits_for_its_first_result(
    write_config: Any, aiohttp_client: Any
) -> None:
    config = load_config(write_config(CONFIG.format(token='""')))
    client = await aiohttp_client(web_app(ResultStore(config)))
    status, _, body = await get(client, "/ready/database")
    assert (status, body["output"]) == (503, "no result yet")
    status, _, _ = await get(client, "/health/database")
    assert status == 200  # warn, as /health shows a check with no result yet


async def test_health_json_in_the_ietf_draft_shape(client: TestClient[Any, Any]) -> None:
    status, content_type, body = await get(client, "/health", headers={"Accept": HEALTH_JSON})
    assert content_type == HEALTH_JSON
    assert (status, body["status"]) == (503, "fail")  # a critical check fails
    assert body["version"] == "2.0.1" and body["serviceId"] == "k8s-probe"
    checks = body["checks"]
    assert checks["database:responseTime"] == [
        {
            "componentType": "tcp",
            "observedValue": 15,
            "observedUnit": "ms",
            "status": "pass",
            "time": "2025-10-09T08:53:20Z",
        }
    ]
    assert checks["openai:responseTime"][0]["output"] == "timed out after 2s"
    assert checks["queues:backlog"] == [
        {
            "componentId": "email",
            "componentType": "tcp",
            "observedValue": 1240.0,
            "observedUnit": "count",
            "status": "warn",
            "time": "2025-10-09T08:53:20Z",
            "output": "backlog 1,240 > 1,000",
        }
    ]
    assert "paystack:responseTime" in checks
    assert "observedValue" not in checks["external_services:responseTime"][0]


async def test_seed_format_stays_the_default(client: TestClient[Any, Any]) -> None:
    for accept in (None, "application/json", "*/*", f"{HEALTH_JSON};q=0, application/json"):
        headers = {"Accept": accept} if accept else {}
        _, content_type, body = await get(client, "/health", headers=headers)
        assert content_type == "application/json"
        assert list(body) == ["status", "timestamp", "version", "uptime", "checks"]


async def test_health_json_needs_the_token_as_verbose_does(
    write_config: Any, aiohttp_client: Any
) -> None:
    store = store_for(write_config, token="k8s-secret-1")
    client = await aiohttp_client(web_app(store))
    denied = await client.get("/health", headers={"Accept": HEALTH_JSON})
    assert denied.status == 401
    allowed = await client.get(
        "/health", headers={"Accept": HEALTH_JSON, "Authorization": "Bearer k8s-secret-1"}
    )
    assert allowed.headers["Content-Type"] == HEALTH_JSON
    assert (await client.get("/health")).status == 503  # the plain body stays open


async def test_other_query_strings_leave_ready_as_it_was(client: TestClient[Any, Any]) -> None:
    plain = await client.get("/ready")
    other = await client.get("/ready?probe=kubelet")
    assert other.status == plain.status == 503
    assert await other.read() == await plain.read()


async def test_an_exclusion_is_judged_once_per_render(
    write_config: Any, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_for(write_config)
    client = await aiohttp_client(web_app(store))
    renders = Renders(store, monkeypatch)
    bodies = {await (await client.get("/ready?exclude=openai")).read() for _ in range(20)}
    assert len(bodies) == 1
    assert renders.plain <= 1
    # A new result is seen by the next request (the render budget is not spent).
    store.record("database", CheckResult(Status.FAIL, 0.001, "connection refused", NOW))
    status, _, body = await get(client, "/ready?exclude=openai")
    assert (status, body["checks"][0]["output"]) == (503, "connection refused")
