"""The domain check against a local RDAP stand-in answering in RFC 9083's shape, found
through a local copy of IANA's bootstrap registry (RFC 9224) served over HTTP."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.checks.domain import DomainConfig, rdap_base
from probe.contract.config import ConfigError, load_config
from probe.core.model import CheckResult, Status
from tests.conftest import MakeRunner, Runners

ServerFactory = Callable[..., Awaitable[TestServer]]
DAY = 86400.0
SEEN = web.AppKey("seen", list[str])
EXPIRES = web.AppKey("expires", dict[str, float])  # domain -> days left when asked


def rdap_domain(name: str, expires: datetime.datetime | None) -> dict[str, Any]:
    events = [
        {"eventAction": "registration", "eventDate": "2015-03-02T10:11:12Z"},
        {"eventAction": "last changed", "eventDate": "2026-03-01T08:00:00Z"},
        {"eventAction": "last update of RDAP database", "eventDate": "2026-12-06T09:00:00Z"},
    ]
    if expires is not None:
        stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        events.insert(1, {"eventAction": "expiration", "eventDate": stamp})
    return {
        "objectClassName": "domain",
        "handle": f"{name.upper()}-TEST",
        "ldhName": name,
        "status": ["client transfer prohibited"],
        "events": events,
        "nameservers": [{"objectClassName": "nameserver", "ldhName": "ns1.example.net"}],
        "rdapConformance": ["rdap_level_0", "icann_rdap_response_profile_1"],
        "notices": [{"title": "Terms of Use", "description": ["Test data only."]}],
    }


def stand_in() -> web.Application:
    """/rdap/dns.json: the bootstrap registry; /registry/domain/<name>: the registry."""
    seen: list[str] = []

    async def bootstrap(request: web.Request) -> web.Response:
        seen.append(request.path)
        base = str(request.url.with_path("/registry/").with_query(None))
        return web.json_response(
            {
                "description": "RDAP bootstrap file for Domain Name System registrations",
                "publication": "2026-11-30T18:00:01Z",
                "services": [
                    [["zz", "example"], [base]],
                    [["co.test"], [base + "co/"]],
                ],
                "version": "1.0",
            },
            content_type="application/json",
        )

    async def domain(request: web.Request) -> web.Response:
        seen.append(request.path)
        assert "application/rdap+json" in request.headers["Accept"]
        name = request.match_info["name"]
        days = request.app[EXPIRES].get(name)
        if days is None:
            return web.json_response(
                {"errorCode": 404, "title": "Not Found", "rdapConformance": ["rdap_level_0"]},
                status=404, content_type="application/rdap+json",
            )  # fmt: skip
        expires = (
            None
            if days < 0
            else datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
        )
        return web.json_response(rdap_domain(name, expires), content_type="application/rdap+json")

    app = web.Application()
    app[SEEN] = seen
    app[EXPIRES] = {"botflow.zz": 200.0, "soon.zz": 20.0, "lapsing.zz": 3.0, "quiet.zz": -1}
    app.router.add_get("/rdap/dns.json", bootstrap)
    app.router.add_get("/registry/domain/{name}", domain)
    app.router.add_get("/registry/co/domain/{name}", domain)
    return app


@pytest.fixture
async def registry(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(stand_in())


@pytest.fixture
def make_runner(runners: Runners, registry: TestServer) -> MakeRunner:
    return runners.maker(
        DomainConfig,
        name="domain",
        type="domain",
        bootstrap_url=str(registry.make_url("/rdap/dns.json")),
        timeout=2,
    )


def expiry(result: CheckResult) -> float | None:
    return next(o.value for o in result.observations if o.measure == "expiry")


@pytest.mark.parametrize(
    ("domain", "days", "status", "words"),
    [
        ("botflow.zz", 200, Status.PASS, ""),
        ("soon.zz", 20, Status.WARN, "< 30d"),
        ("lapsing.zz", 3, Status.FAIL, "< 7d"),
    ],
)
async def test_default_limits_warn_under_30_days_and_fail_under_7(
    make_runner: MakeRunner, domain: str, days: int, status: Status, words: str
) -> None:
    result = await make_runner(name=domain.replace(".", "-"), domain=domain).run()

    left = expiry(result)
    assert left is not None and (days - 1) * DAY < left <= days * DAY
    assert result.status is status
    if words:
        assert result.output.startswith("expiry ") and result.output.endswith(words)


async def test_the_bootstrap_is_fetched_once_and_the_registry_at_most_every_12h(
    make_runner: MakeRunner, registry: TestServer
) -> None:
    first = make_runner(name="a", domain="botflow.zz")
    second = make_runner(name="b", domain="SOON.zz.")  # any case, a final dot
    results = [await first.run(), await second.run(), await first.run(), await first.run()]

    assert [r.status for r in results] == [Status.PASS, Status.WARN, Status.PASS, Status.PASS]
    assert registry.app[SEEN] == [
        "/rdap/dns.json",
        "/registry/domain/botflow.zz",
        "/registry/domain/soon.zz",
    ]
    a, b = expiry(results[0]), expiry(results[3])
    assert a is not None and b is not None and 0 <= a - b < 5  # counted down, not asked


async def test_the_longest_suffix_wins_and_rdap_url_skips_the_bootstrap(
    make_runner: MakeRunner, registry: TestServer
) -> None:
    registry.app[EXPIRES]["shop.co.test"] = 100.0
    by_suffix = await make_runner(name="s", domain="shop.co.test").run()
    direct = await make_runner(
        name="d", domain="botflow.zz", rdap_url=str(registry.make_url("/registry"))
    ).run()

    assert by_suffix.status is Status.PASS and expiry(by_suffix) is not None
    assert "/registry/co/domain/shop.co.test" in registry.app[SEEN]
    assert direct.status is Status.PASS
    assert rdap_base("a.example", [(["example"], ["http://x/", "https://y/"])]) == "https://y/"


async def test_failures_in_words(make_runner: MakeRunner, registry: TestServer) -> None:
    unknown_tld = await make_runner(name="t", domain="botflow.nope").run()
    missing = await make_runner(name="m", domain="gone.zz").run()
    quiet = await make_runner(name="q", domain="quiet.zz").run()
    no_bootstrap = await make_runner(
        name="b", domain="botflow.zz", bootstrap_url=str(registry.make_url("/missing.json"))
    ).run()

    where = f"127.0.0.1:{registry.port}"
    assert unknown_tld.output == (
        "no RDAP server for .nope in the bootstrap registry; set rdap_url"
    )
    assert missing.output == f"gone.zz is not registered (RDAP server {where}: 404)"
    assert no_bootstrap.output == (
        f"RDAP bootstrap answered HTTP 404 ({registry.make_url('/missing.json')})"
    )
    assert quiet.status is Status.PASS
    assert [o.note for o in quiet.observations if o.measure == "expiry"] == [
        "the registry publishes no expiration date"
    ]


def test_config_errors(write_config: Any) -> None:
    path = write_config(
        """
checks:
  - { name: a, type: domain, domain: localhost }
  - { name: b, type: domain, domain: 'https://botflow.ai/' }
  - { name: c, type: domain, domain: botflow.ai, rdap_url: rdap.example }
  - { name: d, type: domain, domain: botflow.ai, warn: { expiry: '<60d' } }
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert [p.removeprefix(f"{path}: ") for p in caught.value.problems] == [
        "checks[0].domain: expected a registered domain like example.com, got 'localhost'",
        "checks[1].domain: expected a registered domain like example.com, "
        "got 'https://botflow.ai/'",
        "checks[2].rdap_url: expected a URL like https://rdap.verisign.com/com/v1/, "
        "got 'rdap.example'",
    ]


def test_a_users_warn_keeps_the_default_fail() -> None:
    config = DomainConfig.model_validate(
        {"name": "d", "type": "domain", "domain": "botflow.ai", "warn": {"expiry": "<60d"}}
    )
    warn, fail = config.limits_for("")

    assert warn["expiry"].value == 60 * DAY and fail["expiry"].value == 7 * DAY
