"""The prometheus check against a hostile metrics endpoint: fresh series on every scrape
(a request id in a label) keep its state bounded, and a NaN or +Inf scrape leaves the
window's sums intact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from probe.checks.promql import CounterWindow
from probe.core.model import CheckResult, Status
from tests.prometheus_helpers import config, notes, values
from tests.support import HandClock

LIMIT = 10_000  # the documented number of series followed per selector


@dataclass
class HostileMetrics:
    """Serves `http_requests_total` in the way `mode` asks:
    `counts`: the ok and 5xx counters as set; `fresh:N`: also N series never seen before,
    one per request id; `odd`: the 5xx counter NaN, the ok one +Inf."""

    ok: int = 0
    errors: int = 0
    mode: str = "counts"
    scrapes: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        lines = ["# TYPE http_requests_total counter"]
        if self.mode == "odd":
            lines += ['http_requests_total{status="500"} NaN']
            lines += ['http_requests_total{status="200"} +Inf']
        else:
            lines += [f'http_requests_total{{status="500"}} {self.errors}']
            lines += [f'http_requests_total{{status="200"}} {self.ok}']
        if self.mode.startswith("fresh:"):
            count = int(self.mode.split(":")[1])
            lines += [
                f'http_requests_total{{status="200",request_id="s{self.scrapes}-r{i}"}} 1'
                for i in range(count)
            ]
        return web.Response(text="\n".join(lines) + "\n")


@pytest.fixture
async def hostile() -> AsyncIterator[HostileMetrics]:
    metrics = HostileMetrics()
    server = web.Application()
    server.router.add_get("/metrics", metrics.handle)
    runner = web.AppRunner(server, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    metrics.url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    yield metrics
    await runner.cleanup()


def windows(runner: Any) -> dict[str, CounterWindow]:
    found: dict[str, CounterWindow] = runner.check._windows
    return found


def ratio_config(url: str, **extra: Any) -> Any:
    return config(
        url,
        window="1m",
        interval="15s",
        measures={
            "error_ratio": {"ratio": ["errors", "requests"]},
            "error_rate": {"rate": "errors", "per": "1m"},
        },
        warn={"error_ratio": "50%"},
        fail={},
        min_requests=1,
        **extra,
    )


async def test_fresh_series_on_every_scrape_keep_the_state_bounded(
    hostile: HostileMetrics,
    make: Any,
) -> None:
    clock = HandClock()
    runner = make(ratio_config(hostile.url), clock)
    hostile.mode = f"fresh:{LIMIT + 2_000}"
    results: list[CheckResult] = []
    for _ in range(5):  # 60,000 series in all, inside one 1m window
        hostile.ok += 100
        hostile.errors += 10
        results.append(await runner.run())
        clock.now += 15
        for window in windows(runner).values():
            # 12,002 series in one scrape: the state of no selector grows past the limit.
            assert len(window.last) <= LIMIT
    last = results[-1]
    assert last.status is Status.PASS
    assert (
        "series limit reached (10,000 followed, the rest summed as one)"
        in (notes(last)["error_ratio"])
    )
    # The 5xx selector never had more than one series: its figures stay exact.
    assert values(last)["error_rate"] == pytest.approx(40.0)
    assert notes(last)["error_rate"] == "40 in 1m, per 1m"

    # The churn ends: the state shrinks back to the series that are still there.
    hostile.mode = "counts"
    for _ in range(6):
        hostile.ok += 100
        hostile.errors += 10
        result = await runner.run()
        clock.now += 15
    assert {key: len(w.last) for key, w in windows(runner).items()} == {
        "errors": 1,
        "requests": 2,
    }
    assert "series limit reached" not in notes(result)["error_ratio"]
    assert values(result)["error_ratio"] == pytest.approx(10 / 110)


async def test_a_nan_and_inf_scrape_does_not_poison_the_window(
    hostile: HostileMetrics,
    make: Any,
) -> None:
    clock = HandClock()
    runner = make(ratio_config(hostile.url), clock)
    for _ in range(5):  # a healthy minute: 1 error in 100 requests per scrape
        hostile.ok += 99
        hostile.errors += 1
        await runner.run()
        clock.now += 15
    hostile.mode = "odd"
    odd = await runner.run()
    clock.now += 15
    assert notes(odd)["error_ratio"].endswith("; 1 sample was +Inf; 1 sample was NaN")
    assert notes(odd)["error_rate"].endswith("; 1 sample was NaN")
    # Now every request fails.
    hostile.mode = "counts"
    for _ in range(5):
        hostile.errors += 100
        result = await runner.run()
        clock.now += 15
    assert values(result)["error_ratio"] == pytest.approx(1.0)
    assert values(result)["error_rate"] == pytest.approx(400.0)
    assert result.status is Status.WARN
    assert "error_ratio 100% > 50%" in result.output
    assert "NaN" not in notes(result)["error_ratio"]


async def test_runs_that_time_out_never_pile_up_parses(
    hostile: HostileMetrics,
    make: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 50,000 fresh series (3 MB) take seconds to parse; every run times out after 200ms
    # while its parse goes on in a thread. Each run used to queue one more body. The parse
    # is held until the five runs are over, so how fast this machine parses changes nothing.
    import threading
    import time

    from probe.checks.promql import ScrapeParser

    parse = ScrapeParser.parse
    lock = threading.Lock()
    held = threading.Event()
    running, most, started = [0], [0], [0]

    def counted(self: ScrapeParser, text: str) -> Any:
        with lock:
            running[0] += 1
            started[0] += 1
            most[0] = max(most[0], running[0])
        try:
            held.wait(60)
            return parse(self, text)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(ScrapeParser, "parse", counted)
    hostile.mode = "fresh:50000"
    runner = make(ratio_config(hostile.url, timeout="200ms"), HandClock())
    try:
        results = [await runner.run() for _ in range(5)]
    finally:
        held.set()
    assert [r.output for r in results] == ["timed out after 200ms"] * 5
    assert (most[0], started[0]) == (1, 1)
    deadline = time.monotonic() + 60
    while running[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert running[0] == 0
