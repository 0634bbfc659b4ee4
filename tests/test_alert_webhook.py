"""The `webhook` notifier through a local receiver: the JSON body field by field, retries on
429 and 5xx, and secrets in the URL and headers never shown."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from probe.core.model import Status
from probe.engine.alerts.alert_test import send_test
from probe.engine.alerts.delivery import Backoff
from probe.engine.alerts.service import AlertService
from tests.alert_helpers import REFUSED, T0, make_config, obs, result
from tests.slack_receiver import Answer, SlackReceiver

FAST = Backoff(initial=0.05, maximum=0.2)
HOOK_TOKEN = "hooktoken-7f3a9c"
API_KEY = "apikey-51d2e8"


def webhook(receiver: SlackReceiver, **extra: Any) -> dict[str, Any]:
    return {
        "type": "webhook",
        "url": f"http://127.0.0.1:{receiver.port}/services/{HOOK_TOKEN}",
        "headers": {"X-Api-Key": API_KEY},
        **extra,
    }


def service_for(receiver: SlackReceiver, now: list[float]) -> AlertService:
    config = make_config(
        alerts={"for": {"fail": "1m"}, "group_wait": "0s", "notifiers": [webhook(receiver)]}
    )
    return AlertService(config, clock=lambda: now[0], backoff=FAST, retry_after_cap=0.5)


async def test_firing_and_resolved_documents_field_by_field(receiver: SlackReceiver) -> None:
    now = [T0]
    service = service_for(receiver, now)
    await service.start()
    try:
        for _ in range(5):
            service.observe("database", REFUSED)
            now[0] += 15
        firing = (await receiver.wait_for(1))[0]
        healthy = result(Status.PASS, obs("", "response_time", 0.002))
        for _ in range(2):
            service.observe("database", healthy)
            now[0] += 15
        resolved = (await receiver.wait_for(2))[1]
    finally:
        await service.stop()

    assert set(firing) == {"agent", "kind", "alerts"}
    assert firing["agent"] == "botflow-probe"
    assert firing["kind"] == "firing"
    (alert,) = firing["alerts"]
    assert list(alert) == [
        "check",
        "component",
        "measure",
        "severity",
        "summary",
        "since",
        "at",
        "lasted",
    ]
    assert alert["check"] == "database" and alert["component"] == ""
    assert alert["severity"] == "critical"
    assert alert["summary"] == "connection refused (127.0.0.1:5432)"
    assert datetime.fromisoformat(alert["since"]).timestamp() == T0
    assert datetime.fromisoformat(alert["at"]).timestamp() == T0 + 60
    assert alert["lasted"] == 60

    assert resolved["kind"] == "resolved"
    assert resolved["alerts"][0]["lasted"] == 90  # first failure to the second pass
    assert receiver.received[0].headers["X-Api-Key"] == API_KEY
    assert receiver.received[0].headers["Content-Type"].startswith("application/json")


async def test_429_and_500_are_retried_until_delivered(receiver: SlackReceiver) -> None:
    receiver.plan(Answer(429, retry_after="0"), Answer(500), Answer(503))
    now = [T0]
    service = service_for(receiver, now)
    await service.start()
    try:
        for _ in range(5):
            service.observe("database", REFUSED)
            now[0] += 15
        delivered = await receiver.wait_for(1)
    finally:
        await service.stop()
    assert [r.status for r in receiver.received] == [429, 500, 503, 200]
    assert delivered[0]["kind"] == "firing"
    assert service.notification_counts()[("webhook", "sent")] == 1


async def test_a_404_is_given_up_with_words_that_hold_no_secret(
    receiver: SlackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.plan(Answer(404))
    caplog.set_level(logging.DEBUG)
    reports = await send_test(make_config(alerts={"notifiers": [webhook(receiver)]}))
    ((where, delivered, detail),) = reports
    assert not delivered
    assert "HTTP 404" in detail
    assert where == f"webhook http://127.0.0.1:{receiver.port}"
    for text in (where, detail, caplog.text):
        assert HOOK_TOKEN not in text and API_KEY not in text


async def test_alert_test_delivers_a_test_document(receiver: SlackReceiver) -> None:
    reports = await send_test(make_config(alerts={"notifiers": [webhook(receiver)]}))
    assert [delivered for _, delivered, _ in reports] == [True]
    (body,) = receiver.delivered
    assert body["kind"] == "test"
    assert body["alerts"][0]["check"] == "probe"


def probe_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", *args], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("notifier", "expected"),
    [
        (
            f"{{type: webhook, url: 'ftp://x/{HOOK_TOKEN}'}}",
            "alerts.notifiers[0].url: expected an http:// or https:// URL",
        ),
        (
            f"{{type: webhook, url: 'http://x/', headers: {{'X Key': {API_KEY}}}}}",
            "alerts.notifiers[0].headers: invalid header name 'X Key'",
        ),
        ("{type: webhook}", "alerts.notifiers[0].url: required key is missing"),
        (
            "{type: webhook, url: 'http://x/', retries: 3}",
            "alerts.notifiers[0].retries: unknown key",
        ),
    ],
)
def test_config_errors_name_the_key_and_never_echo_secrets(
    tmp_path: Path, notifier: str, expected: str
) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(f"checks: []\nalerts:\n  notifiers:\n    - {notifier}\n")
    done = probe_cli("validate", "-c", str(path))
    assert done.returncode == 2
    assert f"{path}: {expected}" in done.stderr
    assert HOOK_TOKEN not in done.stderr and API_KEY not in done.stderr
    assert "Traceback" not in done.stderr


def test_validate_lists_the_webhook_without_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(
        "checks: []\nalerts:\n  notifiers:\n"
        f"    - {{type: webhook, url: 'https://hooks.example.com/{HOOK_TOKEN}',"
        f" headers: {{Authorization: 'Bearer {API_KEY}'}}}}\n"
    )
    done = probe_cli("validate", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert "notifier: webhook on" in done.stdout
    assert HOOK_TOKEN not in done.stdout + done.stderr
    assert API_KEY not in done.stdout + done.stderr
