"""/metrics bytes are cached between changes and formatted off the event loop."""

from __future__ import annotations

import asyncio
import gc
import gzip
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from probe.checks.http import HttpConfig
from probe.checks.http_phases import PHASES
from probe.contract.config import AgentConfig, AlertsConfig, Config
from probe.contract.plugin import CheckConfig
from probe.core.model import CheckResult, Observation, Status, Unit
from probe.engine.metrics import build_registry
from probe.engine.store import ResultStore
from probe.web.metrics import EXPOSITION_MAX_AGE, CachedExposition
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


def http_store(count: int) -> ResultStore:
    """`count` http checks, each with a result that measured every phase."""
    checks: list[CheckConfig] = [
        HttpConfig(name=f"web-{i:04d}", type="http", url=f"https://127.0.0.1:9/{i}")
        for i in range(count)
    ]
    config = Config(
        source="test", agent=AgentConfig(version="7.7.7"), checks=checks, alerts=AlertsConfig()
    )
    store = ResultStore(config)
    for i, name in enumerate(store.check_names()):
        phases = tuple(
            Observation("", f"{phase}_time", 0.0004 * (i % 50 + k), Unit.SECONDS, Status.PASS)
            for k, phase in enumerate(PHASES)
        )
        status = Status.FAIL if i % 7 == 0 else Status.PASS
        store.record(name, CheckResult(status, 0.003 * (i % 40), "", 1.7e9 + i, phases))
    return store


def family_blocks(body: bytes) -> dict[str, bytes]:
    text = body.removesuffix(b"# EOF\n")
    blocks = [b"# HELP " + block for block in text.split(b"# HELP ")[1:]]
    named = {block.split(b" ", 3)[2].decode(): block for block in blocks}
    return {name: block for name, block in named.items() if not name.startswith("process_")}


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


async def test_a_scrape_of_thousands_of_http_checks_is_prometheus_clients_bytes(
    aiohttp_client: Any,
) -> None:
    store = http_store(500)
    client, _ = await serve(store, aiohttp_client)
    registry = build_registry(store, None)
    plain = await (await client.get("/metrics")).read()
    assert family_blocks(plain) == family_blocks(generate_latest(registry.frozen()))
    openmetrics = await (await client.get("/metrics", headers={"Accept": OPENMETRICS})).read()
    assert openmetrics.endswith(b"# EOF\n") and openmetrics.count(b"# EOF") == 1
    assert family_blocks(openmetrics) == family_blocks(
        choose_encoder(OPENMETRICS)[0](registry.frozen())
    )
    assert (
        b'probe_http_phase_duration_seconds_bucket{check="web-0001",le="0.001",phase="dns"} 1.0'
        in plain
    )


async def test_a_scrape_of_thousands_of_checks_leaves_the_loop_free(aiohttp_client: Any) -> None:
    # Formatted on the loop, 3,000 checks held it for the whole scrape: the ticker below
    # saw one gap as long as the scrape. Copied for a thread, the copy held it for 30 ms
    # and more, and the thread's formatting took the GIL from it. Written in slices on the
    # loop, no gap is longer than a slice (1 ms) and a loop turn.
    store = http_store(3_000)
    client, _ = await serve(store, aiohttp_client)
    # As the agent does once started: what lives as long as it is out of the collector's
    # sight, or a full collection of this test's heap is the longest gap.
    gc.collect()
    gc.freeze()
    assert store.health.status_code == 200  # rendered, as the heartbeat keeps it
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
    gc.unfreeze()
    # Relative to the scrape, not a number of milliseconds: a loaded machine stretches both.
    assert longest < took / 3, (longest, took)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_the_bytes_of_a_big_scrape_are_given_back(aiohttp_client: Any) -> None:
    # 21 MB of exposition in pieces at 3,000 http checks: glibc kept 20-30 MB of it in the
    # process after the bytes were dropped, until asked to give it back.
    store = http_store(3_000)
    client, _ = await serve(store, aiohttp_client)
    assert store.health.status_code == 200
    gc.collect()
    before = rss_mb()
    url = client.make_url("/metrics")
    # Compressed and kept compressed: the client's own buffers stay small.
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for accept in ("text/plain", OPENMETRICS):
            headers = {"Accept": accept, "Accept-Encoding": "gzip"}
            async with http.get(url, headers=headers) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                assert len(await response.read()) > 100_000
    await asyncio.sleep(EXPOSITION_MAX_AGE + 0.5)
    gc.collect()
    assert rss_mb() - before < 12, (before, rss_mb())


async def test_gzip_is_made_once_per_formatting_and_holds_the_plain_bytes(
    aiohttp_client: Any,
) -> None:
    store = http_store(300)
    client, cache = await serve(store, aiohttp_client)
    # `auto_decompress=False`: the bytes as sent.
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        url = client.make_url("/metrics")
        zipped = []
        for _ in range(2):
            async with http.get(url, headers={"Accept-Encoding": "gzip, deflate"}) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                zipped.append(await response.read())
        async with http.get(url, headers={"Accept-Encoding": "identity"}) as response:
            assert "Content-Encoding" not in response.headers
            plain = await response.read()
    assert zipped[0] == zipped[1]
    assert gzip.decompress(zipped[0]) == plain
    assert len(zipped[0]) < len(plain) / 5
    assert cache.bakes == 1
