"""The SaaS notifiers against local stand-ins that check every request against the
service's documented schema (tests/saas_standins.py): a firing and its resolve in each
service's own terms, its rate-limit words honoured, `probe alert-test`, and the secrets."""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Any

import pytest

from probe.contract.notification import Alert, Kind, Notification, Severity
from probe.contract.plugin import DeliveryError
from probe.contract.plugins import build_notifier
from probe.core.model import Status
from probe.core.redact import Redactor
from probe.engine.alerts.alert_test import send_test
from probe.engine.alerts.delivery import Backoff
from probe.engine.alerts.service import AlertService
from probe.engine.alerts.session import notifier_session
from tests.alert_helpers import T0, make_config, obs, result
from tests.redirect_server import NOT_FOLLOWED, redirecting
from tests.saas_standins import (
    BOT_TOKEN,
    DISCORD_TOKEN,
    NTFY_TOKEN,
    OPSGENIE_KEY,
    PUSHOVER_TOKEN,
    PUSHOVER_USER,
    ROUTING_KEY,
    TEAMS_SIG,
    SaaS,
    notifier_for,
)

FAST = Backoff(initial=0.05, maximum=0.2)
PUBLIC_URL = "https://probe.example.com"
# Failure words with every character HTML and Markdown treat specially.
FAILURE = 'expected "ok" in body, got <h1>Bad & Gateway</h1> *now* _x_'
FAILED = result(Status.FAIL, output=FAILURE)
HEALTHY = result(Status.PASS, obs("", "response_time", 0.002))
SERVICES = ["pagerduty", "opsgenie", "teams", "discord", "telegram", "pushover", "ntfy", "apprise"]
SECRETS = [ROUTING_KEY, OPSGENIE_KEY, BOT_TOKEN, DISCORD_TOKEN, TEAMS_SIG, PUSHOVER_TOKEN,
           PUSHOVER_USER, NTFY_TOKEN]  # fmt: skip


def service_for(notifiers: list[dict[str, Any]], now: list[float]) -> AlertService:
    config = make_config(
        alerts={"for": {"fail": "1m", "warn": "1m"}, "group_wait": "0s", "notifiers": notifiers},
        agent={"public_url": PUBLIC_URL},
    )
    return AlertService(config, clock=lambda: now[0], backoff=FAST, retry_after_cap=0.3)


async def fire_and_resolve(service: AlertService, now: list[float], wait: Any) -> None:
    for _ in range(5):
        service.observe("database", FAILED)
        now[0] += 15
    await wait(1)
    for _ in range(2):
        service.observe("database", HEALTHY)
        now[0] += 15
    await wait(2)


# ---------------------------------------------------------------- each service's own terms


def _requests(saas: SaaS, service: str) -> list[Any]:
    return saas.delivered(service)


def _check_pagerduty(saas: SaaS) -> None:
    trigger, resolve = _requests(saas, "pagerduty")
    key = "botflow-probe/database//up"
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == key
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "botflow-probe"
    assert FAILURE in trigger["payload"]["summary"]
    assert trigger["links"] == [
        {"href": f"{PUBLIC_URL}/status", "text": "botflow-probe status page"}
    ]
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": key}
    assert saas.pagerduty_alerts == {key: "resolved"}


def _check_opsgenie(saas: SaaS) -> None:
    create, close = _requests(saas, "opsgenie")
    alias = "botflow-probe/database//up"
    assert create["alias"] == alias and create["priority"] == "P1"
    assert create["message"].startswith("CRITICAL database: expected")
    assert f"{PUBLIC_URL}/status" in create["description"]
    assert close["source"] == "botflow-probe" and close["note"].startswith("resolved after")
    paths = [h.path for h in saas.hits if h.service == "opsgenie"]
    assert paths[1] == "/v2/alerts/botflow-probe%2Fdatabase%2F%2Fup/close?identifierType=alias"
    assert saas.opsgenie_alerts == {alias: "closed"}


def _check_teams(saas: SaaS) -> None:
    firing, resolved = _requests(saas, "teams")
    card = firing["attachments"][0]["content"]
    assert card["version"] == "1.4"
    assert card["body"][1]["style"] == "attention"
    assert card["body"][1]["items"][1]["text"] == FAILURE
    assert card["actions"][0]["url"] == f"{PUBLIC_URL}/status"
    assert resolved["attachments"][0]["content"]["body"][1]["style"] == "good"


def _check_discord(saas: SaaS) -> None:
    firing, resolved = _requests(saas, "discord")
    assert firing["embeds"][0]["color"] == 0xE01E5A
    assert firing["embeds"][0]["title"] == "CRITICAL database"
    assert firing["allowed_mentions"] == {"parse": []}
    assert firing["content"] == "botflow-probe: 1 critical"
    assert resolved["embeds"][0]["color"] == 0x2EB67D


def _check_telegram(saas: SaaS) -> None:
    firing, resolved = _requests(saas, "telegram")
    assert firing["parse_mode"] == "HTML" and firing["chat_id"] == -1001234567890
    assert "<b>CRITICAL</b> <code>database</code>" in firing["text"]
    assert html.escape(FAILURE) in firing["text"]
    assert f'<a href="{PUBLIC_URL}/status">status page</a>' in firing["text"]
    assert "<b>RESOLVED</b>" in resolved["text"]


def _check_pushover(saas: SaaS) -> None:
    firing, resolved = _requests(saas, "pushover")
    assert (firing["priority"], resolved["priority"]) == (1, -1)
    assert firing["title"] == "botflow-probe: 1 critical"
    assert firing["url"] == f"{PUBLIC_URL}/status"


def _check_ntfy(saas: SaaS) -> None:
    firing, resolved = _requests(saas, "ntfy")
    assert firing["topic"] == "probe-alerts"
    assert (firing["priority"], resolved["priority"]) == (5, 3)
    assert firing["tags"] == ["rotating_light"] and resolved["tags"] == ["white_check_mark"]
    assert firing["click"] == f"{PUBLIC_URL}/status"


def _check_apprise(saas: SaaS) -> None:
    firing, resolved = _requests(saas, "apprise")
    assert (firing["type"], resolved["type"]) == ("failure", "success")
    assert firing["title"] == "botflow-probe: 1 critical"
    assert FAILURE in firing["message"]


CHECKS = {
    "pagerduty": _check_pagerduty,
    "opsgenie": _check_opsgenie,
    "teams": _check_teams,
    "discord": _check_discord,
    "telegram": _check_telegram,
    "pushover": _check_pushover,
    "ntfy": _check_ntfy,
    "apprise": _check_apprise,
}


@pytest.mark.parametrize("name", SERVICES)
async def test_a_firing_and_its_resolve_in_the_services_own_terms(saas: SaaS, name: str) -> None:
    now = [T0]
    service = service_for([notifier_for(name, saas)], now)
    await service.start()

    async def wait(count: int) -> None:
        await saas.wait_for(name, count)

    try:
        await fire_and_resolve(service, now, wait)
    finally:
        await service.stop()
    assert saas.problems == []
    CHECKS[name](saas)
    assert service.notification_counts()[(name, "sent")] == 2


# ---------------------------------------------------------------- rate limits


@pytest.mark.parametrize("name", SERVICES)
async def test_a_429_in_the_services_words_is_retried_until_delivered(
    saas: SaaS, name: str
) -> None:
    saas.plan(name, "rate_limited", "server_error")
    now = [T0]
    service = service_for([notifier_for(name, saas)], now)
    await service.start()
    try:
        for _ in range(5):
            service.observe("database", FAILED)
            now[0] += 15
        await saas.wait_for(name, 1)
    finally:
        await service.stop()
    statuses = [h.status for h in saas.hits if h.service == name]
    assert statuses[:2] == [429, 500] and statuses[2] < 300
    assert saas.problems == []
    counts = service.notification_counts()
    assert counts[(name, "sent")] == 1 and counts[(name, "failed")] == 2


async def _one_attempt(saas: SaaS, name: str) -> DeliveryError:
    config = make_config(alerts={"notifiers": [notifier_for(name, saas)]})
    (notifier_config,) = config.alerts.notifiers
    redactor = Redactor(config.secrets())
    alert = Alert("database", "", Severity.CRITICAL, Kind.FIRING, FAILURE, T0, T0 + 60, T0 + 60)
    async with notifier_session([notifier_config]) as session:
        notifier = build_notifier(notifier_config, session, redactor)
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(Notification("botflow-probe", T0, (alert,)))
    return caught.value


@pytest.mark.parametrize(
    ("name", "wait", "words"),
    [
        ("discord", 0.25, "You are being rate limited."),  # the body's retry_after
        ("telegram", 1.0, "Too Many Requests: retry after 1"),  # parameters.retry_after
        ("opsgenie", 1.0, "You are making too many requests!"),  # Retry-After header
        ("teams", 1.0, "Rate limit is exceeded."),
        ("pagerduty", None, "Requests for this service are arriving too quickly."),
        ("ntfy", None, "limit reached: too many requests"),
    ],
)
async def test_the_wait_each_service_asks_for_is_the_one_honoured(
    saas: SaaS, name: str, wait: float | None, words: str
) -> None:
    saas.plan(name, "rate_limited")
    error = await _one_attempt(saas, name)
    assert error.retryable
    assert error.retry_after == wait
    assert "rate limited (HTTP 429" in error.detail and words in error.detail
    for secret in SECRETS:
        assert secret not in error.detail


async def test_a_request_the_service_refuses_is_dropped_not_retried(saas: SaaS) -> None:
    config = notifier_for("telegram", saas, bot_token="123456789:AAEwrongTokenForTheStandIn")
    reports = await send_test(make_config(alerts={"notifiers": [config]}))
    ((where, delivered, detail),) = reports
    assert not delivered and "HTTP 401" in detail and "Unauthorized" in detail
    assert where == "telegram chat -1001234567890"
    assert "wrongToken" not in detail and "/***/sendMessage" in detail
    assert len([h for h in saas.hits if h.service == "telegram"]) == 1


# ---------------------------------------------------------------- alert-test


async def test_alert_test_reaches_every_service_without_paging_anyone(saas: SaaS) -> None:
    config = make_config(
        alerts={"notifiers": [notifier_for(name, saas) for name in SERVICES]},
        agent={"public_url": PUBLIC_URL},
    )
    reports = await send_test(config)
    assert [(where.split()[0], delivered) for where, delivered, _ in reports] == [
        (name, True) for name in SERVICES
    ]
    assert saas.problems == []
    trigger, resolve = saas.delivered("pagerduty")
    assert trigger["payload"]["severity"] == "info" and resolve["event_action"] == "resolve"
    assert saas.pagerduty_alerts == {"botflow-probe/probe/alert-test/": "resolved"}
    create, _close = saas.delivered("opsgenie")
    assert create["priority"] == "P5"
    assert saas.opsgenie_alerts == {"botflow-probe/probe/alert-test/": "closed"}
    assert "<b>TEST</b>" in saas.delivered("telegram")[0]["text"]
    assert saas.delivered("ntfy")[0]["priority"] == 3
    assert saas.delivered("apprise")[0]["type"] == "info"


async def test_telegram_token_stays_out_of_logs_and_errors_when_the_client_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that answers garbage: aiohttp's exception text quotes the whole URL."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"this is not HTTP at all\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    caplog.set_level(logging.DEBUG)
    notifier = {"type": "telegram", "bot_token": BOT_TOKEN, "chat_id": 42,
                "url": f"http://127.0.0.1:{port}"}  # fmt: skip
    try:
        reports = await send_test(make_config(alerts={"notifiers": [notifier]}))
        now = [T0]
        service = service_for([notifier], now)
        await service.start()
        for _ in range(5):
            service.observe("database", FAILED)
            now[0] += 15
        await asyncio.sleep(0.5)
        await service.stop(flush_timeout=0.2)
    finally:
        server.close()
        await server.wait_closed()
    ((_where, delivered, detail),) = reports
    assert not delivered
    _token_id, _, token_secret = BOT_TOKEN.partition(":")
    for text in (detail, caplog.text):
        assert BOT_TOKEN not in text and token_secret not in text
    assert "notification to telegram chat 42 failed" in caplog.text


@pytest.mark.parametrize("name", ["pagerduty", "opsgenie"])
async def test_a_retry_sends_only_the_events_not_yet_accepted(saas: SaaS, name: str) -> None:
    saas.plan(name, "ok", "rate_limited")
    now = [T0]
    config = make_config(
        alerts={
            "for": {"fail": "1m"},
            "group_wait": "5s",
            "notifiers": [notifier_for(name, saas)],
        }
    )
    service = AlertService(
        config, clock=lambda: now[0], backoff=FAST, retry_after_cap=0.3, tick_interval=0.05
    )
    await service.start()
    try:
        for _ in range(5):
            for check in ("database", "redis", "app"):
                service.observe(check, FAILED)
            now[0] += 15
        await saas.wait_for(name, 3)
        await asyncio.sleep(0.2)
    finally:
        await service.stop()
    assert [h.status for h in saas.hits if h.service == name][:2] == [202, 429]
    # One event per alert, each accepted once: the retry did not repeat the first.
    assert len(saas.hits) == 4 and len(saas.delivered(name)) == 3
    assert service.notification_counts()[(name, "sent")] == 1


@pytest.mark.parametrize("name", ["pagerduty", "opsgenie", "teams", "discord", "telegram"])
async def test_a_redirect_is_a_failure_and_the_secret_stays_hidden(name: str) -> None:
    """An http -> https upgrade in front of the service: not followed, said in words,
    and the secret in the redirect's Location (the same URL) is not shown."""
    server = await redirecting(308, "")
    fake = SaaS(port=server.port)  # only for the URLs: the redirecting server owns the port
    try:
        notifier = notifier_for(name, fake)
        ((_where, delivered, detail),) = await send_test(
            make_config(alerts={"notifiers": [notifier]})
        )
    finally:
        await server.close()
    assert not delivered and NOT_FOLLOWED in detail and "HTTP 308" in detail
    assert len(server.seen) == 1
    for secret in SECRETS:
        assert secret not in detail
