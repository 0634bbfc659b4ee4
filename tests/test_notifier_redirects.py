"""Notifiers never follow a redirect: a 3xx is a failure in words, nothing reaches the other
host, no secret header travels, and `probe alert-test` exits 1.

A 302 (an ingress's http -> https upgrade) would make aiohttp re-send a body-less GET that
the other host answers 200, so the alert would count as delivered without being posted; a
307 would post the alert and its secret headers to the other host.
"""

from __future__ import annotations

from typing import Any

import pytest

from probe.engine.alerts.alert_test import send_test
from tests.alert_helpers import make_config
from tests.alertmanager_server import am_alerts
from tests.cli_helpers import arun_cli
from tests.redirect_server import NOT_FOLLOWED, Server, redirecting
from tests.slack_receiver import Answer, SlackReceiver

API_KEY = "RedirKeyCNRY32"
HOOK_TOKEN = "hooktok-9d41c7e2"


def hook(server: Server, **extra: Any) -> dict[str, Any]:
    return {
        "type": "webhook",
        "url": f"{server.url}/hook/{HOOK_TOKEN}",
        "headers": {"X-Api-Key": API_KEY},
        **extra,
    }


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_webhook_redirect_is_a_final_failure_and_the_other_host_gets_nothing(
    status: int, other_host: Server
) -> None:
    # `localhost`, not 127.0.0.1: another host to aiohttp, which strips only Authorization.
    target = f"http://localhost:{other_host.port}/steal?token=stolen"
    server = await redirecting(status, target)
    try:
        reports = await send_test(make_config(alerts={"notifiers": [hook(server)]}))
    finally:
        await server.close()
    assert reports == [
        (
            f"webhook {server.url}",
            False,
            f"HTTP {status} to http://localhost:{other_host.port}/steal?token=***: " + NOT_FOLLOWED,
        )
    ]
    assert other_host.seen == []
    assert len(server.seen) == 1  # not retried: the receiver would say the same again
    method, _, headers, body = server.seen[0]
    assert method == "POST" and b'"kind": "test"' in body and headers["X-Api-Key"] == API_KEY


async def test_a_secret_in_the_location_is_not_shown(other_host: Server) -> None:
    # An http -> https upgrade of the same hook URL: the token in its path stays hidden.
    server = await redirecting(302, "")
    server.location = f"https://127.0.0.1:{server.port}/hook/{HOOK_TOKEN}"
    try:
        ((_, delivered, detail),) = await send_test(
            make_config(alerts={"notifiers": [hook(server)]})
        )
    finally:
        await server.close()
    assert not delivered
    assert detail == f"HTTP 302 to https://127.0.0.1:{server.port}/hook/***: {NOT_FOLLOWED}"
    assert HOOK_TOKEN not in detail and API_KEY not in detail


async def test_a_redirect_loop_says_so_not_http_0() -> None:
    server = await redirecting(302, "")  # Location: the URL asked for
    try:
        reports = await send_test(
            make_config(alerts={"notifiers": [{"type": "webhook", "url": f"{server.url}/hook"}]})
        )
    finally:
        await server.close()
    assert reports == [
        (
            f"webhook {server.url}",
            False,
            f"HTTP 302 to the same URL (a redirect loop): {NOT_FOLLOWED}",
        )
    ]


async def test_webhook_http_500_words_have_no_masked_url_or_empty_field(
    receiver: SlackReceiver,
) -> None:
    receiver.plan(
        Answer(500, body=""), Answer(500, body="  \n "), Answer(404, body="no\nsuch  hook")
    )
    url = f"http://127.0.0.1:{receiver.port}/services/{HOOK_TOKEN}"
    notifier = {"type": "webhook", "url": url}
    reports = await send_test(make_config(alerts={"notifiers": [notifier, notifier]}))
    where = f"webhook http://127.0.0.1:{receiver.port}"
    assert reports == [(where, False, "HTTP 500"), (where, False, "HTTP 404: no such hook")]


@pytest.mark.parametrize("status", [302, 307])
async def test_slack_webhook_and_web_api_do_not_follow_redirects(
    status: int, other_host: Server
) -> None:
    target = f"http://localhost:{other_host.port}/elsewhere"
    server = await redirecting(status, target)
    notifiers = [
        {"type": "slack", "webhook_url": f"{server.url}/services/T0/B0/{HOOK_TOKEN}"},
        {
            "type": "slack",
            "token": "xoxb-redirect-secret",
            "channel": "#alerts",
            "api_url": f"{server.url}/api/",
        },
    ]
    try:
        reports = await send_test(make_config(alerts={"notifiers": notifiers}))
    finally:
        await server.close()
    words = f"HTTP {status} to {target}: {NOT_FOLLOWED}"
    assert reports == [("slack webhook 127.0.0.1", False, words), ("slack #alerts", False, words)]
    assert other_host.seen == []
    assert len(server.seen) == 2


async def test_alertmanager_behind_a_302_is_not_delivered(
    alertmanager: str,
) -> None:
    # The 302 points at a real Alertmanager's alert list, which answers a GET with 200.
    server = await redirecting(302, f"{alertmanager}/api/v2/alerts")
    agent = "redirect-agent"
    config = make_config(
        alerts={"notifiers": [{"type": "alertmanager", "urls": [server.url]}]},
        agent={"name": agent},
    )
    try:
        reports = await send_test(config)
    finally:
        await server.close()
    assert reports == [
        (
            f"alertmanager {server.url}",
            False,
            f"{server.url}/api/v2/alerts: HTTP 302 to {alertmanager}/api/v2/alerts: "
            + NOT_FOLLOWED,
        )
    ]
    alerts = await am_alerts(alertmanager, "probe")
    assert [a for a in alerts if a["labels"].get("agent") == agent] == []


async def test_alert_test_command_exits_1_on_a_307(other_host: Server, write_config: Any) -> None:
    target = f"http://localhost:{other_host.port}/steal"
    server = await redirecting(307, target)
    config = write_config(
        "agent: {history: 'off'}\nchecks: []\nalerts:\n  notifiers:\n"
        f"    - {{type: webhook, url: '{server.url}/hook/{HOOK_TOKEN}',"
        f" headers: {{X-Api-Key: {API_KEY}}}}}\n"
    )
    try:
        outcome = await arun_cli("alert-test", "-c", str(config))
    finally:
        await server.close()
    assert outcome.code == 1
    assert outcome.stdout == (
        f"webhook {server.url}: FAILED: HTTP 307 to {target}: {NOT_FOLLOWED}\n"
    )
    assert other_host.seen == []
    for text in (outcome.stdout, outcome.stderr):
        assert API_KEY not in text and HOOK_TOKEN not in text
