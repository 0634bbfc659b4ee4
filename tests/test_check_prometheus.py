"""The prometheus check against a real prom-client app driven to known counts, and
against hostile scrape targets (huge, not Prometheus, hung, behind basic auth)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from probe.contract.config import ConfigError, load_config
from probe.core.model import Status
from tests.node_promclient import PromApp
from tests.prometheus_helpers import T0, config, notes, values
from tests.support import HandClock

CANARY = "canary-Pw-8821"


@pytest.fixture
def app() -> Iterator[PromApp]:
    with PromApp() as running:
        yield running


async def test_ratio_rate_and_spike_equal_the_counts_produced(app: PromApp, make: Any) -> None:
    clock = HandClock(T0)
    runner = make(config(app.url), clock)
    app.hit(200, 1000)  # before the first scrape: history, not part of any window
    first = await runner.run()
    assert first.status is Status.PASS
    assert notes(first)["error_ratio"] == "warming up: 0s of 5m"
    assert notes(first)["error_spike"] == "warming up: 0s of 15m"

    # 10 quiet minutes: 100 requests a minute, 1 of them a 500.
    for _ in range(10):
        app.hit(200, 99)
        app.hit(500, 1)
        clock.now += 60
        await runner.run()
    # Then 5 bad minutes: 200 requests a minute, 30 of them 5xx (20 x 503, 10 x 500).
    for _ in range(5):
        app.hit(200, 170)
        app.hit(503, 20)
        app.hit(500, 10)
        clock.now += 60
        result = await runner.run()

    got = values(result)
    assert got["error_ratio"] == pytest.approx(150 / 1000)
    assert got["error_rate"] == pytest.approx(30.0)  # per minute over the 5m window
    # window 30/min against a 15m baseline of (10 + 150) / 15 min
    assert got["error_spike"] == pytest.approx(30 / (160 / 15))
    assert result.status is Status.FAIL
    assert "error_ratio 15% > 10% (150 of 1,000 in 5m)" in result.output
    assert "error_spike 2.81" not in result.output  # under 3: no warn for the spike


async def test_a_restart_of_the_app_is_a_counter_reset_not_a_negative_rate(
    app: PromApp, make: Any
) -> None:
    clock = HandClock(T0)
    runner = make(config(app.url, window="2m"), clock)
    app.hit(200, 5000)
    app.hit(500, 400)
    await runner.run()
    app.hit(200, 90)
    app.hit(500, 10)
    clock.now += 60
    await runner.run()
    app.restart()  # every counter is back at zero
    app.hit(200, 45)
    app.hit(500, 5)
    clock.now += 60
    result = await runner.run()

    got = values(result)
    assert got["error_rate"] == pytest.approx(15 / 2)  # 10 + 5 errors in 2m, per minute
    assert got["error_ratio"] == pytest.approx(15 / 150)


async def test_below_min_requests_no_ratio_is_judged(app: PromApp, make: Any) -> None:
    clock = HandClock(T0)
    runner = make(config(app.url, window="1m", min_requests=50), clock)
    await runner.run()
    app.hit(500, 9)
    app.hit(200, 1)
    clock.now += 60
    result = await runner.run()
    assert values(result)["error_ratio"] is None
    assert notes(result)["error_ratio"] == "10 requests in 1m, under min_requests 50"
    assert "error_ratio" not in result.output


async def test_one_shot_says_rates_need_the_agent(app: PromApp, make: Any) -> None:
    result = await make(config(app.url), HandClock(T0), agent=False).run()
    assert result.status is Status.PASS
    assert notes(result)["error_ratio"] == "needs the agent: rates are measured over 5m"


async def test_a_gauge_is_read_with_value(app: PromApp, make: Any) -> None:
    cfg = config(
        app.url,
        series={"heap": "nodejs_heap_size_total_bytes", "requests": "http_requests_total"},
        measures={"heap": {"value": "heap"}},
        warn={"heap": 1},
        fail={},
    )
    result = await make(cfg, HandClock(T0)).run()
    assert values(result)["heap"] is not None and values(result)["heap"] > 1_000_000  # type: ignore[operator]
    assert result.status is Status.WARN


async def test_an_absent_series_is_one_clear_line(app: PromApp, make: Any) -> None:
    cfg = config(app.url, series={"errors": "http_errors_total", "requests": "http_requests_total"})
    result = await make(cfg, HandClock(T0)).run()
    assert result.status is Status.FAIL
    assert result.output.startswith("series http_errors_total not found in the scrape (")
    assert result.output.endswith(" series seen)")


# ---------------------------------------------------------------- hostile targets


async def serve(handler: Any) -> tuple[web.AppRunner, str]:
    server = web.Application()
    server.router.add_get("/metrics", handler)
    runner = web.AppRunner(server, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/metrics"


async def test_a_body_over_10_mib_is_refused(make: Any) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        line = b'http_requests_total{status="200"} 1\n' * 1000
        for _ in range(400):  # 14 MB, streamed with no Content-Length
            await response.write(line)
        return response

    server, url = await serve(huge)
    try:
        result = await make(config(url, timeout="4s", interval="10s"), HandClock(T0)).run()
    finally:
        await server.cleanup()
    assert result.status is Status.FAIL
    assert result.output == "scrape body is larger than 10.0MiB; scrape a smaller endpoint"


async def test_a_body_that_is_not_prometheus_text(make: Any) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Welcome to nginx!</body></html>\n")

    server, url = await serve(html)
    try:
        result = await make(config(url), HandClock(T0)).run()
    finally:
        await server.cleanup()
    assert result.status is Status.FAIL
    assert result.output.startswith("not Prometheus text")
    assert "127.0.0.1" in result.output and "Traceback" not in result.output


async def test_a_hung_endpoint_times_out(make: Any) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="")

    server, url = await serve(hang)
    try:
        result = await make(config(url, timeout="500ms"), HandClock(T0)).run()
    finally:
        await server.cleanup()
    assert result.status is Status.FAIL
    assert result.output == "timed out after 500ms"


async def test_basic_auth_sends_the_password_and_never_shows_it(make: Any) -> None:
    seen: list[str] = []

    async def guarded(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        expected = "Basic " + base64.b64encode(f"service_role:{CANARY}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, text=f"bad credentials {CANARY}")
        return web.Response(text="# TYPE http_requests_total counter\nhttp_requests_total 5\n")

    server, url = await serve(guarded)
    try:
        good = await make(
            config(url, username="service_role", password=CANARY), HandClock(T0)
        ).run()
        bad = await make(
            config(url, username="service_role", password="wrong-pw"), HandClock(T0)
        ).run()
    finally:
        await server.cleanup()
    assert good.status is Status.PASS, good.output
    assert bad.status is Status.FAIL
    assert bad.output == f"scrape answered HTTP 401 (http://127.0.0.1:{url.split(':')[2]})"
    assert CANARY not in repr(good) + repr(bad)
    assert CANARY not in config(url, username="u", password=CANARY).model_dump_json()


# ---------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("series", "measures", "words"),
    [
        (
            {"errors": 'http_requests_total{status=~"5(.."}', "requests": "http_requests_total"},
            None,
            "checks[0].series.errors: bad regular expression '5(..' for status",
        ),
        (
            {"errors": "http_requests_total{status=5xx}", "requests": "http_requests_total"},
            None,
            "checks[0].series.errors: bad label matcher 'status=5xx'",
        ),
        (
            None,
            {"error_ratio": {"ratio": ["errors", "reqs"]}},
            "checks[0]: measures.error_ratio: 'reqs' is not a key of series",
        ),
        (None, {"x": {"rate": "errors", "value": "errors"}}, "give exactly one of ratio"),
    ],
)
def test_bad_selectors_are_config_errors_naming_the_key(
    write_config: Any, series: dict[str, str] | None, measures: Any, words: str
) -> None:
    import yaml

    entry: dict[str, Any] = {
        "name": "api_errors",
        "type": "prometheus",
        "url": "http://127.0.0.1:3000/api/metrics",
        "series": series or {"errors": "http_requests_total", "requests": "http_requests_total"},
        "measures": measures or {"error_ratio": {"ratio": ["errors", "requests"]}},
    }
    path = write_config(yaml.safe_dump({"checks": [entry]}))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert any(words in problem for problem in caught.value.problems), caught.value.problems


# ---------------------------------------------------------------- probe check


def test_probe_check_says_rates_and_heartbeats_need_the_agent(
    app: PromApp, write_config: Any
) -> None:
    from tests.cli_helpers import run_cli

    app.hit(500, 7)
    path = write_config(
        f"""
checks:
  - name: api_errors
    type: prometheus
    url: {app.url}
    series: {{ errors: 'http_requests_total{{status=~"5.."}}', requests: http_requests_total }}
    measures: {{ error_ratio: {{ ratio: [errors, requests] }} }}
    fail: {{ error_ratio: 1% }}
  - {{ name: billing, type: heartbeat, every: 1h }}
"""
    )
    done = run_cli("check", "--config", str(path))
    assert done.code == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "needs the agent: rates are measured over 5m" in lines[0]
    assert lines[0].startswith("PASS  api_errors")
    assert "needs the agent: heartbeats are pings the running agent receives" in lines[1]


# ---------------------------------------------------------------- selectors and resets


SCRAPE = """# TYPE http_requests_total counter
http_requests_total{route="/a",status="200"} 10
http_requests_total{route="/a",status="500"} 3
http_requests_total{route="/health",status="200"} 50
http_requests_total{status="503",route="/b"} 2
"""


@pytest.mark.parametrize(
    ("selector", "total"),
    [
        ("http_requests_total", 65),
        ('http_requests_total{status=~"5.."}', 5),
        ('http_requests_total{status!~"5..", route!="/health"}', 10),
        ('http_requests_total{route="/a"}', 13),
        ('http_requests_total{route=~"/a|/b", status="503"}', 2),
        ('http_requests_total{env=""}', 65),  # an absent label is the empty string
        ('http_requests_total{status=~"5"}', 0),  # regexes match the whole value
    ],
)
def test_selectors_sum_the_matching_series(selector: str, total: float) -> None:
    from probe.checks.promql import ScrapeParser, parse_selector

    scrape = ScrapeParser(frozenset({"http_requests_total"})).parse(SCRAPE)
    assert sum(v for _, v in scrape.matching(parse_selector(selector))) == total


def test_label_order_and_a_vanished_series_do_not_fake_an_increase() -> None:
    from probe.checks.promql import CounterWindow, ScrapeParser, parse_selector

    parser = ScrapeParser(frozenset({"jobs_total"}))
    everything = parse_selector("jobs_total")
    window = CounterWindow(keep=300)
    window.add(
        0, parser.parse('jobs_total{a="1",b="2"} 100\njobs_total{a="9"} 40\n').matching(everything)
    )
    # Same series, labels printed the other way round; the a="9" series is gone for a scrape.
    window.add(60, parser.parse('jobs_total{b="2",a="1"} 110\n').matching(everything))
    window.add(
        120,
        parser.parse('jobs_total{a="1",b="2"} 115\njobs_total{a="9"} 41\n').matching(everything),
    )
    assert window.increase(120, 120) == 16


# ---------------------------------------------------------------- in the running agent


async def test_api_errors_in_warn_in_verbose_health(app: PromApp, write_config: Any) -> None:
    import json
    import time

    import aiohttp

    from probe.agent import Agent

    path = write_config(
        f"""
agent: {{ listen: "127.0.0.1:0", history: "off" }}
checks:
  - name: api_errors
    type: prometheus
    url: {app.url}
    interval: 1s
    timeout: 800ms
    window: 3s
    series: {{ errors: 'http_requests_total{{status=~"5.."}}', requests: http_requests_total }}
    measures: {{ error_ratio: {{ ratio: [errors, requests] }} }}
    warn: {{ error_ratio: 2% }}
    fail: {{ error_ratio: 10% }}
"""
    )
    agent = Agent(load_config(path, environ={}))
    await agent.start()
    url = f"http://127.0.0.1:{agent.port}/health?verbose=1"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            body: dict[str, Any] = {}
            while time.monotonic() < deadline:
                await asyncio.to_thread(app.hit, 200, 97)
                await asyncio.to_thread(app.hit, 503, 3)
                async with session.get(url) as response:
                    body = json.loads(await response.read())
                if body["checks"][0].get("output", "").startswith("error_ratio"):
                    break
                await asyncio.sleep(0.25)
    finally:
        await agent.stop()
    print(json.dumps(body, indent=2))  # the closing note quotes it
    entry = body["checks"][0]
    assert (body["status"], entry["status"]) == ("degraded", "warn"), body
    assert entry["output"].startswith("error_ratio 3% > 2% (")
    ratio = next(o for o in entry["observations"] if o["measure"] == "error_ratio")
    assert ratio["value"] == pytest.approx(0.03)
