"""/metrics bytes are cached between changes and formatted off the event loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from probe.contract.config import AgentConfig, AlertsConfig, Config
from probe.contract.plugin import CheckConfig
from probe.core.model import CheckResult, Status
from probe.engine.metrics import build_registry
from probe.engine.store import ResultStore
from probe.web.metrics import CachedExposition
from tests.support import web_app

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
    app = web_app(store, build_registry(store, None))
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
    # `?name[]=` filters as prometheus_client does: the filtered bytes are its own.
    only = await client.get("/metrics", params={"name[]": "process_open_fds"})
    wanted = generate_latest(build_registry(store, None).restricted_registry(["process_open_fds"]))
    assert only.status == 200
    assert await only.read() == wanted
    assert cache.bakes == 3  # plain (also served gzipped), OpenMetrics, the filtered one


async def test_concurrent_scrapes_share_one_formatting(aiohttp_client: Any) -> None:
    store = fed(200)
    client, cache = await serve(store, aiohttp_client)
    bodies = await asyncio.gather(*(client.get("/metrics") for _ in range(6)))
    texts = {await b.text() for b in bodies}
    assert len(texts) == 1
    assert cache.bakes == 1


async def test_a_scrape_of_thousands_of_checks_leaves_the_loop_free(aiohttp_client: Any) -> None:
    # Formatted on the loop, 3,000 checks held it for the whole scrape: the ticker below
    # saw one gap as long as the scrape. Off the loop it keeps ticking throughout.
    store = fed(3_000)
    client, _ = await serve(store, aiohttp_client)
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.005)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = loop.time()
    response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    await response.read()
    took = loop.time() - started
    ticking.cancel()
    during = [t for t in ticks if t >= started]
    longest = max(b - a for a, b in zip([started, *during], [*during, loop.time()], strict=True))
    assert longest < took / 3, (longest, took)
