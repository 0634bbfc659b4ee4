"""Slack: payload contents, grouping, webhook and chat.postMessage against a local receiver."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from probe.contract.notification import Alert, Kind, Notification, Severity
from probe.core.model import CheckResult, Status
from probe.engine.alerts.alert_test import send_test
from probe.engine.alerts.delivery import Backoff
from probe.engine.alerts.service import AlertService
from probe.notifiers.slack import build_payload
from tests.alert_helpers import REFUSED, T0, backlog, make_config, obs, result
from tests.cli_helpers import arun_cli
from tests.conftest import free_port
from tests.slack_receiver import Answer, SlackReceiver

QUEUES = ["billing", "email", "whatsapp", "ai-assistant", "receipt-ocr", "analytics", "webhooks"]


def webhook(receiver: SlackReceiver) -> dict[str, Any]:
    return {"type": "slack", "webhook_url": receiver.webhook_url}


def attachment_texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["color"], a["blocks"][0]["text"]["text"]) for a in body["attachments"]]


def test_payload_has_severity_component_value_limit_colour_and_text() -> None:
    alerts = (
        Alert(
            "queues",
            "ai-assistant",
            Severity.WARNING,
            Kind.FIRING,
            "ai-assistant backlog 1,240 > 1,000",
            T0,
            T0 + 300,
        ),
        Alert(
            "queues", "email", Severity.CRITICAL, Kind.FIRING, "email workers 0 < 1", T0, T0 + 60
        ),
        Alert(
            "database",
            "",
            Severity.CRITICAL,
            Kind.RESOLVED,
            "connection refused (127.0.0.1:5432)",
            T0,
            T0 + 750,
        ),
    )
    body = build_payload(Notification("botflow-probe", T0 + 750, alerts))

    header = body["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"] == ":red_circle: botflow-probe: 1 critical, 1 warning, 1 resolved"
    colours_and_text = attachment_texts(body)
    assert [c for c, _ in colours_and_text] == ["#ECB22E", "#E01E5A", "#2EB67D"]
    warning, critical, resolved = (t for _, t in colours_and_text)
    assert warning.startswith("*WARNING*  `queues/ai-assistant`")
    assert "ai-assistant backlog 1,240 > 1,000" in warning
    assert "since 2025-12-01 10:00:00 UTC" in warning
    assert "*CRITICAL*  `queues/email`" in critical and "email workers 0 < 1" in critical
    assert "*RESOLVED*  `database`" in resolved and "lasted 12m30s" in resolved

    assert body["text"].splitlines() == [
        "[botflow-probe: 1 critical, 1 warning, 1 resolved]",
        "WARNING queues/ai-assistant: ai-assistant backlog 1,240 > 1,000 "
        "(since 2025-12-01 10:00:00 UTC)",
        "CRITICAL queues/email: email workers 0 < 1 (since 2025-12-01 10:00:00 UTC)",
        "RESOLVED database: connection refused (127.0.0.1:5432) "
        "(lasted 12m30s (since 2025-12-01 10:00:00 UTC))",
    ]


def test_a_huge_group_stays_within_slack_block_limits() -> None:
    alerts = tuple(
        Alert("queues", f"q{i}", Severity.CRITICAL, Kind.FIRING, "x", T0, T0) for i in range(120)
    )
    body = build_payload(Notification("a", T0, alerts))
    assert len(body["attachments"]) == 41
    assert "and 80 more" in body["attachments"][-1]["blocks"][0]["elements"][0]["text"]
    assert len(body["text"].splitlines()) == 121


async def test_firing_and_resolved_messages_through_the_webhook(receiver: SlackReceiver) -> None:
    now = [T0]
    config = make_config(
        alerts={"for": {"fail": "1m"}, "group_wait": "0s", "notifiers": [webhook(receiver)]}
    )
    service = AlertService(config, clock=lambda: now[0])
    await service.start()
    try:
        for _ in range(5):
            service.observe("database", REFUSED)
            now[0] += 15
        firing = (await receiver.wait_for(1))[0]
        assert "CRITICAL database: connection refused (127.0.0.1:5432)" in firing["text"]
        assert attachment_texts(firing)[0][0] == "#E01E5A"
        assert service.firing() == {"warning": 0, "critical": 1}

        healthy = result(Status.PASS, obs("", "response_time", 0.002))
        service.observe("database", healthy)
        now[0] += 15
        service.observe("database", healthy)
        resolved = (await receiver.wait_for(2))[1]
        assert "RESOLVED database" in resolved["text"] and "lasted 1m30s" in resolved["text"]
        assert attachment_texts(resolved)[0][0] == "#2EB67D"
    finally:
        await service.stop()
    assert len(receiver.received) == 2
    assert service.notification_counts()[("slack", "sent")] == 2


async def test_a_redis_outage_is_one_message_not_nine(receiver: SlackReceiver) -> None:
    now = [T0]
    config = make_config(
        alerts={"for": {"fail": "0s"}, "group_wait": "10s", "notifiers": [webhook(receiver)]}
    )
    service = AlertService(config, clock=lambda: now[0], tick_interval=0.02)
    await service.start()
    try:
        service.observe("redis", REFUSED)
        now[0] += 3
        service.observe(
            "database", result(Status.FAIL, output="connection refused (127.0.0.1:6379)")
        )
        now[0] += 3
        queues = CheckResult(
            Status.FAIL,
            0.01,
            "",
            now[0],
            tuple(obs(q, "workers", 0, Status.FAIL, "< 1") for q in QUEUES),
        )
        service.observe("queues", queues)
        await asyncio.sleep(0.2)
        assert receiver.received == []  # still inside group_wait
        now[0] += 4
        body = (await receiver.wait_for(1))[0]
        await asyncio.sleep(0.2)
        assert len(receiver.received) == 1
        assert body["blocks"][0]["text"]["text"] == ":red_circle: botflow-probe: 9 critical"
        keys = [t.split("`")[1] for _, t in attachment_texts(body)]
        assert keys == ["redis", "database", *(f"queues/{q}" for q in QUEUES)]
    finally:
        await service.stop()


async def test_chat_post_message_with_token_and_channel(receiver: SlackReceiver) -> None:
    now = [T0]
    notifier = {
        "type": "slack",
        "token": "xoxb-test-secret-token",
        "channel": "#alerts",
        "api_url": receiver.api_url,
    }
    config = make_config(
        alerts={"for": {"warn": "0s"}, "group_wait": "0s", "notifiers": [notifier]}
    )
    service = AlertService(config, clock=lambda: now[0])
    await service.start()
    try:
        service.observe("queues", backlog(1240))
        body = (await receiver.wait_for(1))[0]
    finally:
        await service.stop()
    request = receiver.received[0]
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == "Bearer xoxb-test-secret-token"
    assert body["channel"] == "#alerts"
    assert "WARNING queues/ai-assistant: ai-assistant backlog 1,240 > 1,000" in body["text"]
    assert attachment_texts(body)[0][0] == "#ECB22E"


async def test_escalation_is_its_own_message(receiver: SlackReceiver) -> None:
    now = [T0]
    config = make_config(
        alerts={
            "for": {"warn": "0s", "fail": "30s"},
            "group_wait": "0s",
            "notifiers": [webhook(receiver)],
        }
    )
    service = AlertService(config, clock=lambda: now[0])
    await service.start()
    try:
        service.observe("queues", backlog(1240))
        await receiver.wait_for(1)
        # The same cause getting worse: alerts are per measure, so the backlog escalates.
        huge = result(Status.FAIL, obs("ai-assistant", "backlog", 9000, Status.FAIL, "> 5,000"))
        for _ in range(3):
            now[0] += 15
            service.observe("queues", huge)
        escalated = (await receiver.wait_for(2))[1]
    finally:
        await service.stop()
    assert "(escalated from warning)" in attachment_texts(escalated)[0][1]
    assert "CRITICAL queues/ai-assistant: ai-assistant backlog 9,000 > 5,000" in escalated["text"]


async def test_unconfigured_slack_is_skipped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(alerts={"notifiers": [{"type": "slack", "webhook_url": ""}]})
    service = AlertService(config)
    with caplog.at_level(logging.WARNING, logger="probe.alerts"):
        await service.start()
        service.observe("database", REFUSED)
        await service.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("slack notifier 0 skipped" in m for m in warnings) == 1
    assert service.notification_counts() == {}


async def test_send_test_reports_each_notifier(receiver: SlackReceiver) -> None:
    closed_port = free_port()
    config = make_config(
        alerts={
            "notifiers": [
                webhook(receiver),
                {"type": "slack", "webhook_url": f"http://127.0.0.1:{closed_port}/services/x/y/z"},
                {"type": "slack", "webhook_url": ""},
            ]
        }
    )
    reports = await send_test(config)
    assert reports[0] == ("slack webhook 127.0.0.1", True, "")
    assert reports[1][:2] == ("slack webhook 127.0.0.1", False)
    assert reports[1][2] == f"connection refused (127.0.0.1:{closed_port})"
    assert reports[2] == ("slack[2]", False, "not configured: webhook_url is empty")
    body = receiver.delivered[0]
    assert "TEST probe/alert-test: test notification from botflow-probe" in body["text"]


async def test_send_test_waits_out_one_rate_limit(receiver: SlackReceiver) -> None:
    receiver.plan(Answer(429, retry_after="1"))
    started = time.monotonic()
    reports = await send_test(make_config(alerts={"notifiers": [webhook(receiver)]}))
    assert reports == [("slack webhook 127.0.0.1", True, "")]
    assert time.monotonic() - started >= 0.9
    assert [r.status for r in receiver.received] == [429, 200]


async def test_a_slack_that_never_answers_is_a_timeout(
    receiver: SlackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.plan(Answer(hang=True), Answer(hang=True))
    notifier = {**webhook(receiver), "timeout": "1s"}
    reports = await send_test(make_config(alerts={"notifiers": [notifier]}))
    assert reports == [("slack webhook 127.0.0.1", False, "timed out after 1s")]

    now = [T0]
    config = make_config(
        alerts={"for": {"fail": "0s"}, "group_wait": "0s", "notifiers": [notifier]}
    )
    service = AlertService(config, clock=lambda: now[0], backoff=Backoff(0.05, 0.1))
    with caplog.at_level(logging.WARNING, logger="probe.alerts.delivery"):
        await service.start()
        try:
            service.observe("database", REFUSED)
            await receiver.wait_for(1)  # the next attempt is answered
        finally:
            await service.stop()
    failures = [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()]
    assert failures and failures[0].startswith(
        "notification to slack webhook 127.0.0.1 failed: timed out after 1s; retrying in"
    )


def post_message(receiver: SlackReceiver) -> dict[str, Any]:
    return {
        "type": "slack",
        "token": "xoxb-test-secret-token",
        "channel": "#alerts",
        "api_url": receiver.api_url,
    }


async def test_an_answer_that_is_not_slack_api_json_fails_the_notifier(
    receiver: SlackReceiver,
) -> None:
    receiver.plan(Answer(body="ok"), Answer(body="<html>sign in</html>"), Answer(body="[1]"))
    reports = await send_test(make_config(alerts={"notifiers": [post_message(receiver)] * 3}))
    words = "Slack answered something that is not Slack API JSON"
    assert reports == [("slack #alerts", False, words)] * 3
    assert len(receiver.received) == 3  # not retried: the same server would say the same


async def test_alert_test_command_reports_failed_for_a_non_json_answer(
    receiver: SlackReceiver, write_config: Any
) -> None:
    receiver.plan(Answer(body="ok"))
    config = write_config(
        "alerts:\n  notifiers:\n"
        f"    - {{type: slack, token: xoxb-test-secret-token, channel: '#alerts',"
        f" api_url: '{receiver.api_url}'}}\n"
    )
    outcome = await arun_cli("alert-test", "-c", str(config))
    assert outcome.code == 1
    assert outcome.stdout == (
        "slack #alerts: FAILED: Slack answered something that is not Slack API JSON\n"
    )
    assert "internal error" not in outcome.stderr and "xoxb-test" not in outcome.stderr
