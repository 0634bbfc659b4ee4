"""At-least-once delivery through 429, 500, refused connections; drops after max age."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from probe.contract.notification import Notification
from probe.core.redact import Redactor
from probe.engine.alerts.alert_test import _try_send
from probe.engine.alerts.delivery import RETRY_AFTER_CAP, Backoff
from probe.engine.alerts.service import AlertService
from probe.notifiers.errors import parse_retry_after
from tests.alert_helpers import REFUSED, make_config
from tests.slack_receiver import Answer, SlackReceiver

FAST = Backoff(initial=0.05, maximum=0.2)


def http_date(ts: float) -> str:
    """An RFC 9110 HTTP date, as a server writes it in Retry-After."""
    return datetime.fromtimestamp(ts, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def service_for(
    receiver: SlackReceiver, retry_after_cap: float = 0.5, **alerts: Any
) -> AlertService:
    settings: dict[str, Any] = {
        "for": {"fail": "0s"},
        "group_wait": "0s",
        "notifiers": [{"type": "slack", "webhook_url": receiver.webhook_url}],
    }
    settings.update(alerts)
    return AlertService(make_config(alerts=settings), backoff=FAST, retry_after_cap=retry_after_cap)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = time.time()
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after(http_date(now + 30), now) == pytest.approx(30, abs=1.01)
    assert parse_retry_after(http_date(now - 30), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(initial=1, maximum=8)
    assert all(0.5 <= backoff.delay(0) <= 1 for _ in range(20))
    assert all(4 <= backoff.delay(3) <= 8 for _ in range(20))
    assert all(4 <= backoff.delay(30) <= 8 for _ in range(20))


async def test_429_with_retry_after_seconds_is_honoured(receiver: SlackReceiver) -> None:
    receiver.plan(Answer(429, retry_after="1"))
    # The real Retry-After cap: these tests are about long waits.
    service = service_for(receiver, retry_after_cap=RETRY_AFTER_CAP)
    await service.start()
    started = time.monotonic()
    try:
        service.observe("database", REFUSED)
        await receiver.wait_for(1)
    finally:
        await service.stop()
    assert time.monotonic() - started >= 0.9  # waited for Retry-After, not the 50ms backoff
    first, second = receiver.received
    assert (first.status, second.status) == (429, 200)
    assert first.body == second.body
    counts = service.notification_counts()
    assert (counts[("slack", "failed")], counts[("slack", "sent")]) == (1, 1)


async def test_429_with_an_http_date_or_a_huge_retry_after(receiver: SlackReceiver) -> None:
    receiver.plan(
        Answer(429, retry_after=http_date(time.time() + 1)),
        Answer(429, retry_after="86400"),  # capped (0.5 s in this test, 60 s by default)
        Answer(429, retry_after="Tomorrow-ish"),  # unparseable: ordinary backoff
    )
    service = service_for(receiver)
    await service.start()
    try:
        service.observe("database", REFUSED)
        await receiver.wait_for(1, timeout=10)
    finally:
        await service.stop()
    assert [r.status for r in receiver.received] == [429, 429, 429, 200]


async def test_500_and_refused_connections_are_retried_until_delivered(
    receiver: SlackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.plan(Answer(500), Answer(503))
    service = service_for(receiver)
    await service.start()
    try:
        service.observe("database", REFUSED)
        await receiver.wait_for(1)
        await receiver.refuse()
        service.observe("redis", REFUSED)
        await asyncio.sleep(0.5)  # several refused attempts
        assert len(receiver.delivered) == 1
        await receiver.accept()
        bodies = await receiver.wait_for(2)
    finally:
        await service.stop()
    assert "CRITICAL redis" in bodies[1]["text"]
    counts = service.notification_counts()
    assert counts[("slack", "sent")] == 2
    assert counts[("slack", "failed")] >= 3  # 500, 503, and at least one refusal
    assert counts[("slack", "dropped")] == 0
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert any("HTTP 500" in m for m in retries)
    assert any("connection refused (127.0.0.1:" in m for m in retries)
    assert "secretpart" not in caplog.text  # the webhook URL's secret path never logged


async def test_other_4xx_is_logged_once_and_dropped(
    receiver: SlackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.plan(Answer(404))
    service = service_for(receiver)
    await service.start()
    try:
        service.observe("database", REFUSED)
        await asyncio.sleep(0.5)
    finally:
        await service.stop()
    assert [r.status for r in receiver.received] == [404]
    assert service.notification_counts()[("slack", "dropped")] == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["notification to slack webhook 127.0.0.1 dropped: HTTP 404"]


async def test_dropped_after_max_delivery_age(
    receiver: SlackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    await receiver.refuse()
    service = service_for(receiver, max_delivery_age="400ms")
    await service.start()
    try:
        service.observe("database", REFUSED)
        for _ in range(100):
            if service.notification_counts()[("slack", "dropped")]:
                break
            await asyncio.sleep(0.05)
        await receiver.accept()
        await asyncio.sleep(0.3)
    finally:
        await service.stop()
    counts = service.notification_counts()
    assert counts[("slack", "dropped")] == 1 and counts[("slack", "sent")] == 0
    assert receiver.received == []
    assert any("older than 400ms" in r.getMessage() for r in caplog.records)


async def test_stop_is_bounded_and_keeps_what_was_not_delivered(receiver: SlackReceiver) -> None:
    await receiver.refuse()
    service = service_for(receiver)
    await service.start()
    service.observe("database", REFUSED)
    started = time.monotonic()
    await service.stop(flush_timeout=0.3)
    await service.stop()  # twice is fine
    assert time.monotonic() - started < 3
    outbox = service.export_state().outbox
    assert [a.key for n in outbox["slack[0]"] for a in n.alerts] == ["database"]


async def test_stop_does_not_sit_out_a_long_retry_after(receiver: SlackReceiver) -> None:
    receiver.plan(Answer(429, retry_after="30"))
    # The real Retry-After cap: these tests are about long waits.
    service = service_for(receiver, retry_after_cap=RETRY_AFTER_CAP)
    await service.start()
    service.observe("database", REFUSED)
    while not receiver.received:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the 429 is read and the 30s wait has begun
    started = time.monotonic()
    await service.stop(flush_timeout=5)
    assert time.monotonic() - started < 2  # not the 5s flush, let alone the 30s wait
    assert len(receiver.received) == 1
    outbox = service.export_state().outbox
    assert [a.key for n in outbox["slack[0]"] for a in n.alerts] == ["database"]


async def test_stop_with_a_slack_that_never_answers_takes_the_flush_timeout(
    receiver: SlackReceiver,
) -> None:
    receiver.plan(Answer(hang=True))
    service = service_for(receiver)
    await service.start()
    service.observe("database", REFUSED)
    while not receiver.received:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await service.stop(flush_timeout=1)
    assert 0.9 <= time.monotonic() - started < 1.5  # the 10s send timeout is cut short
    outbox = service.export_state().outbox
    assert [a.key for n in outbox["slack[0]"] for a in n.alerts] == ["database"]


class BrokenNotifier:
    """A notifier with a bug: what `probe alert-test` must report, not crash on."""

    kind = "broken"
    description = "broken notifier"
    timeout = 1.0

    async def send(self, notification: Notification) -> None:
        raise ValueError("unexpected answer from hunter2-secret")


async def test_alert_test_reports_a_notifier_bug_as_that_notifier_failing() -> None:
    report = await _try_send(BrokenNotifier(), "botflow-probe", Redactor(["hunter2-secret"]))
    assert report == ("broken notifier", False, "unexpected error: unexpected answer from ***")
