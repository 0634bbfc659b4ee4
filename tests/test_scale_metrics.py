"""/metrics bytes are cached between changes and formatted off the event loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from probe.config import AgentConfig, AlertsConfig, Config
from probe.contract import CheckConfig
from probe.metrics import CachedExposition, build_registry
from probe.model import CheckResult, Status
from probe.server import build_app
from probe.store import ResultStore

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def many_checks(count: int) -> Config:
    checks = [CheckConfig(name=f"target-{i:04d}", type="tcp") for i in range(count)]
    return Config(
        source="test", agent=AgentConfig(version="7.7.7"), checks=checks, alerts=AlertsConfig()
    )


def fed(count: int) -> ResultStore:
    store = ResultStore(many_checks(count))
    for name in store.check_names():
        store.record(name, CheckResult(Status.PASS, 0.003, "", time.time()))
    return store


async def serve(
    store: ResultStore, aiohttp_client: Any
) -> tuple[TestClient[Any, Any], CachedExposition]:
    app = build_app(store, build_registry(store, None))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    for resource in app.router.routes():
        handler = getattr(resource.handler, "__closure__", None) or ()
        for cell in handler:
            if isinstance(cell.cell_contents, CachedExposition):
                return client, cell.cell_contents
    raise AssertionError("the agent's registry must be served by the cached handler")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if not family.name.startswith("process_")
        for s in family.samples
    }


async def test_unchanged_store_is_served_from_cache_and_a_result_shows_at_once(
    aiohttp_client: Any,
) -> None:
    store = fed(20)
    client, cache = await serve(store, aiohttp_client)
    first = await (await client.get("/metrics")).text()
    second = await (await client.get("/metrics")).text()
    assert cache.bakes == 1
    assert samples(first) == samples(second)
    assert samples(first) == samples(generate_latest(build_registry(store, None)).decode())

    store.record("target-0003", CheckResult(Status.FAIL, 0.5, "connection refused", time.time()))
    third = await (await client.get("/metrics")).text()
    assert cache.bakes == 2
    assert samples(third)[("probe_check_up", (("check", "target-0003"),))] == 0.0


async def test_content_negotiation_stays_prometheus_clients(aiohttp_client: Any) -> None:
    store = fed(5)
    client, cache = await serve(store, aiohttp_client)
    plain = await client.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    openmetrics = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await openmetrics.text()).endswith("# EOF\n")
    gzipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert gzipped.headers["Content-Encoding"] == "gzip"
    assert "probe_check_up" in await gzipped.text()
    only = await client.get("/metrics", params={"name[]": "probe_build_info"})
    assert [f.name for f in text_string_to_metric_families(await only.text())] == [
        "probe_build_info"
    ]
    assert cache.bakes == 3  # plain (also served gzipped), OpenMetrics, the filtered one


async def test_concurrent_scrapes_share_one_formatting(aiohttp_client: Any) -> None:
    store = fed(200)
    client, cache = await serve(store, aiohttp_client)
    bodies = await asyncio.gather(*(client.get("/metrics") for _ in range(6)))
    texts = {await b.text() for b in bodies}
    assert len(texts) == 1
    assert cache.bakes == 1


async def test_a_scrape_of_thousands_of_checks_does_not_hold_up_live(aiohttp_client: Any) -> None:
    # Formatted on the loop, the scrape finished before /live was even read.
    store = fed(3_000)
    store.tick()
    client, _ = await serve(store, aiohttp_client)
    order: list[str] = []

    async def get(path: str) -> None:
        response = await client.get(path, headers={"Accept": OPENMETRICS})
        await response.read()
        order.append(path)

    scrape = asyncio.create_task(get("/metrics"))
    await asyncio.sleep(0.05)  # the scrape is being formatted now
    await get("/live")
    await scrape
    assert order == ["/live", "/metrics"]
