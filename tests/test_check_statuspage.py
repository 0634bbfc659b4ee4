"""The statuspage check against a local stand-in serving Atlassian Statuspage's
`api/v2/summary.json` documents, and an http check naming it as its `vendor`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.checks.http import HttpConfig
from probe.checks.statuspage import StatuspageConfig
from probe.contract.config import ConfigError, load_config
from probe.contract.plugin import AgentServices
from probe.core.model import CheckResult, Status
from probe.engine.factory import build_runner
from probe.engine.pings import Inbox
from tests.conftest import MakeRunner, Runners
from tests.statuspage_stand_in import (
    ALL_WELL,
    API_DOWN,
    DEGRADED_NO_INCIDENT,
    MAJOR,
    MINOR,
    component,
    serve,
    stand_in,
    summary,
)

ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def page(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(stand_in())


@pytest.fixture
def make_runner(runners: Runners, page: TestServer) -> MakeRunner:
    base = str(page.make_url("/"))
    return runners.maker(
        StatuspageConfig, name="openai_status", type="statuspage", url=base, timeout=2
    )


def indicator(result: CheckResult) -> tuple[float | None, str]:
    found = next(o for o in result.observations if o.measure == "indicator")
    return found.value, found.note


@pytest.mark.parametrize(
    ("document", "status", "value", "output"),
    [
        (ALL_WELL, Status.PASS, 0, ""),
        (MINOR, Status.WARN, 1, 'indicator 1 > 0 (OpenAI reports: "Slow responses in ChatGPT")'),
        (MAJOR, Status.FAIL, 2,
         'indicator 2 > 1 (OpenAI reports: "Elevated error rates on the API")'),
        (DEGRADED_NO_INCIDENT, Status.WARN, 1,
         "indicator 1 > 0 (OpenAI reports: Minor Service Outage)"),
    ],
)  # fmt: skip
async def test_the_page_as_a_whole(
    make_runner: MakeRunner,
    page: TestServer,
    document: dict[str, Any],
    status: Status,
    value: int,
    output: str,
) -> None:
    serve(page, document)
    result = await make_runner().run()

    assert result.status is status
    assert result.output == output
    assert indicator(result)[0] == value


async def test_one_component(make_runner: MakeRunner, page: TestServer) -> None:
    serve(page, MAJOR)
    api = await make_runner(component="api").run()
    sora = await make_runner(name="sora", component="Sora").run()
    gone = await make_runner(name="gone", component="Embeddings").run()

    assert api.status is Status.FAIL
    assert api.output == (
        'indicator 2 > 1 (OpenAI reports: "Elevated error rates on the API" (API: partial outage))'
    )
    assert sora.status is Status.PASS  # the page's incident is not Sora's
    assert (
        gone.output
        == 'no component named "Embeddings" on the OpenAI status page (components: API, Sora)'
    )


async def test_the_summary_url_may_be_given_and_limits_tuned(
    make_runner: MakeRunner, page: TestServer
) -> None:
    serve(page, MAJOR)
    direct = make_runner(url=str(page.make_url("/api/v2/summary.json")), fail={"indicator": 2})
    result = await direct.run()

    # A major incident warns once the user moves `fail` to critical only.
    assert result.status is Status.WARN
    assert result.output.startswith("indicator 2 > 0 (OpenAI reports:")


async def test_a_page_that_is_not_statuspage_says_so(
    make_runner: MakeRunner, page: TestServer
) -> None:
    wrong_path = await make_runner(url=str(page.make_url("/status"))).run()
    serve(page, {"data": {"attributes": {"aggregate_state": "operational"}}})
    other_shape = await make_runner().run()

    summary_url = str(page.make_url("/status/api/v2/summary.json"))
    assert wrong_path.output == f"status page answered HTTP 404 ({summary_url})"
    assert other_shape.output == (
        f"not a Statuspage summary: no status.indicator ({page.make_url('/api/v2/summary.json')})"
    )


# ---------------------------------------------------------------- vendor: on an http check


async def test_an_http_failure_names_the_vendors_incident(
    runners: Runners, page: TestServer, aiohttp_server: ServerFactory
) -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, text="upstream connect error")

    api = web.Application()
    api.router.add_get("/v1/models", unavailable)
    api_server = await aiohttp_server(api)
    status_config = StatuspageConfig.model_validate(
        {"name": "openai_status", "type": "statuspage", "url": str(page.make_url("/"))}
    )
    latest: dict[str, CheckResult] = {}
    http_config = HttpConfig.model_validate(
        {"name": "openai", "type": "http", "url": str(api_server.make_url("/v1/models")),
         "vendor": "openai_status", "timeout": 2}
    ).linked([status_config])  # fmt: skip
    agent = AgentServices(pings=Inbox(), results=latest.get)
    vendor = build_runner(status_config, agent=agent)
    openai = build_runner(http_config, agent=agent)
    try:
        before = await openai.run()  # the vendor's status not read yet
        serve(page, MAJOR)
        latest["openai_status"] = await vendor.run()
        during = await openai.run()
        serve(page, ALL_WELL)
        latest["openai_status"] = await vendor.run()
        after = await openai.run()
    finally:
        await openai.close()
        await vendor.close()

    assert before.output == "HTTP 503 (expected 200-399)"
    assert during.output == (
        'HTTP 503 (expected 200-399) (OpenAI reports: "Elevated error rates on the API")'
    )
    assert after.output == "HTTP 503 (expected 200-399)"


async def test_a_stale_vendor_status_is_not_quoted(
    runners: Runners, page: TestServer, aiohttp_server: ServerFactory
) -> None:
    serve(page, MAJOR)
    status_config = StatuspageConfig.model_validate(
        {"name": "openai_status", "type": "statuspage", "url": str(page.make_url("/")),
         "interval": 60}
    )  # fmt: skip
    vendor = runners.of(status_config)
    result = await vendor.run()
    old = CheckResult(
        result.status, result.response_time, result.output, time.time() - 3 * 60 - 1,
        result.observations,
    )  # fmt: skip
    http_config = HttpConfig.model_validate(
        {"name": "openai", "type": "http", "url": "http://127.0.0.1:9/", "vendor": "openai_status",
         "timeout": 1}
    ).linked([status_config])  # fmt: skip
    agent = AgentServices(pings=Inbox(), results={"openai_status": old}.get)
    openai = build_runner(http_config, agent=agent)
    try:
        stale = await openai.run()
    finally:
        await openai.close()

    assert stale.output == "connection refused (127.0.0.1:9)"


def test_vendor_must_name_a_statuspage_check(write_config: Any) -> None:
    path = write_config(
        """
checks:
  - { name: openai_status, type: statuspage, url: 'https://status.openai.com' }
  - { name: a, type: http, url: 'https://api.openai.com/', vendor: openai_status }
  - { name: b, type: http, url: 'https://api.openai.com/', vendor: nope }
  - { name: c, type: http, url: 'https://api.openai.com/', vendor: a }
  - { name: d, type: statuspage, url: 'status.openai.com' }
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert [p.removeprefix(f"{path}: ") for p in caught.value.problems] == [
        "checks[4].url: expected a URL like https://status.example.com, got 'status.openai.com'",
        "checks[2].vendor: no check named 'nope'",
        "checks[3].vendor: 'a' is a http check, not statuspage",
    ]


async def test_a_large_page_is_read_whole(make_runner: MakeRunner, page: TestServer) -> None:
    # Big vendors list hundreds of components: the summary spans many reads.
    many = [component(f"c-{i}", f"Region {i} API") for i in range(600)]
    document = summary("major", "Partial System Outage", [*many, API_DOWN], MAJOR["incidents"])
    serve(page, document)
    result = await make_runner(component="API").run()

    assert result.status is Status.FAIL
    assert result.output.endswith('"Elevated error rates on the API" (API: partial outage))')
