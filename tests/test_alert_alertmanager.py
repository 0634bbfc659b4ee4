"""A real Alertmanager: alerts appear with the right labels and resolve."""

from __future__ import annotations

import asyncio
import logging

import pytest

from probe.contract.notification import Alert, Kind, Notification, Severity
from probe.core.times import rfc3339_millis
from probe.engine.alerts.alert_test import send_test
from probe.engine.alerts.service import AlertService
from probe.notifiers.alertmanager import build_alerts
from tests.alert_helpers import HEALTHY, REFUSED, T0, make_config, no_workers
from tests.alertmanager_server import am_alerts, wait_for_alerts
from tests.conftest import free_port
from tests.slack_receiver import Answer, SlackReceiver


def test_escalation_closes_the_warning_alert() -> None:
    alert = Alert(
        "queues",
        "email",
        Severity.CRITICAL,
        Kind.ESCALATED,
        "email workers 0 < 1",
        T0,
        T0 + 400,
        fired_at=T0 + 300,
        previous_severity=Severity.WARNING,
    )
    critical, warning = build_alerts(Notification("a", T0 + 400, (alert,)), resend=60)
    assert critical["labels"]["severity"] == "critical"
    assert critical["endsAt"] == rfc3339_millis(T0 + 400 + 240)
    assert warning["labels"]["severity"] == "warning"
    assert warning["endsAt"] == rfc3339_millis(T0 + 400)
    assert critical["startsAt"] == rfc3339_millis(T0 + 300)


async def test_alerts_fire_and_resolve_in_a_real_alertmanager(alertmanager: str) -> None:
    dead_port = free_port()
    config = make_config(
        alerts={
            "for": {"fail": "0s"},
            "group_wait": "0s",
            # One replica down: the live one still gets everything.
            "notifiers": [
                {"type": "alertmanager", "urls": [alertmanager, f"http://127.0.0.1:{dead_port}"]}
            ],
        }
    )
    service = AlertService(config)  # real clock: Alertmanager judges endsAt by its own
    await service.start()
    try:
        service.observe("database", REFUSED)
        service.observe("queues", no_workers("email"))
        (database,) = await wait_for_alerts(alertmanager, "database", 1)
        (queue,) = await wait_for_alerts(alertmanager, "queues", 1)
        assert database["labels"] == {
            "alertname": "ProbeCheckFailing",
            "check": "database",
            "severity": "critical",
            "agent": "botflow-probe",
            "measure": "up",
        }
        assert queue["labels"]["component"] == "email"
        assert queue["labels"]["measure"] == "workers"
        assert queue["annotations"]["summary"] == "queues/email: email workers 0 < 1"
        assert "CRITICAL on botflow-probe" in queue["annotations"]["description"]
        assert database["status"]["state"] == "active"

        service.observe("database", HEALTHY)
        service.observe("database", HEALTHY)
        await wait_for_alerts(alertmanager, "database", 0)  # resolved: no longer listed
        assert len(await am_alerts(alertmanager, "queues")) == 1
    finally:
        await service.stop()
    counts = service.notification_counts()
    assert counts[("alertmanager", "sent")] == 3  # two firing + one resolved (grouped per call)
    assert counts[("alertmanager", "dropped")] == 0


async def test_firing_alerts_are_re_sent_before_they_expire(alertmanager: str) -> None:
    """endsAt is 4 x resend ahead; without the re-sends the alert would expire in 0.8s."""
    config = make_config(
        alerts={
            "for": {"fail": "0s"},
            "group_wait": "0s",
            "notifiers": [{"type": "alertmanager", "urls": [alertmanager], "resend": "200ms"}],
        }
    )
    service = AlertService(config)
    await service.start()
    try:
        service.observe("redis", REFUSED)
        await wait_for_alerts(alertmanager, "redis", 1)
        await asyncio.sleep(1.5)
        (alert,) = await am_alerts(alertmanager, "redis")
        assert alert["status"]["state"] == "active"
    finally:
        await service.stop()


async def test_send_test_to_alertmanager_and_to_a_refused_port(alertmanager: str) -> None:
    dead_port = free_port()
    config = make_config(
        alerts={
            "notifiers": [
                {"type": "alertmanager", "urls": [alertmanager]},
                {"type": "alertmanager", "urls": [f"http://127.0.0.1:{dead_port}"]},
            ]
        }
    )
    ok, refused = await send_test(config)
    assert ok == (f"alertmanager {alertmanager}", True, "")
    assert refused[:2] == (f"alertmanager http://127.0.0.1:{dead_port}", False)
    assert refused[2] == (
        f"http://127.0.0.1:{dead_port}/api/v2/alerts: connection refused (127.0.0.1:{dead_port})"
    )
    test_alerts = await am_alerts(alertmanager, "probe")
    assert [a["labels"]["alertname"] for a in test_alerts] == ["ProbeAlertTest"]


async def test_a_replica_that_never_answers_is_a_timeout(
    alertmanager: str, caplog: pytest.LogCaptureFixture
) -> None:
    hanging = await SlackReceiver().start()
    hanging.plan(Answer(hang=True), Answer(hang=True))
    hung_url = f"http://127.0.0.1:{hanging.port}/services"
    config = make_config(
        alerts={
            "notifiers": [
                {"type": "alertmanager", "urls": [alertmanager, hung_url], "timeout": "1s"},
                {"type": "alertmanager", "urls": [hung_url], "timeout": "1s"},
            ]
        }
    )
    try:
        with caplog.at_level(logging.WARNING, logger="probe.alerts.alertmanager"):
            one_took_it, none_did = await send_test(config)
    finally:
        await hanging.close()
    timed_out = f"{hung_url}/api/v2/alerts: timed out after 1s"
    assert one_took_it == (f"alertmanager {alertmanager}, {hung_url}", True, "")
    assert (
        f"an alertmanager replica did not take the alerts, another did: {timed_out}"
        in caplog.messages
    )
    assert none_did == (f"alertmanager {hung_url}", False, timed_out)
