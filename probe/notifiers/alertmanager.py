"""Prometheus Alertmanager: `POST /api/v2/alerts` to every configured URL.

Alertmanager expects clients to keep re-sending firing alerts (Prometheus does every
minute with `endsAt` = now + 4 x resend interval); an alert that is not re-sent expires at
its `endsAt`. So besides the notifications from the engine (fired, escalated, resolved),
the service calls `resend` every `resend` seconds with all firing alerts.

Every alert carries `alertname="ProbeCheckFailing"`, a `severity` label (`warning` or
`critical`) and a `measure` label (`backlog`, `workers`; `up` when the check could not
run); routes and inhibitions match on `severity` and `measure`, not on the name.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import Field, field_validator

from probe.contract.notification import Alert, Kind, Notification, alert_key
from probe.contract.plugin import DeliveryError, Notifier, NotifierConfig
from probe.core.fields import Duration, is_http_url
from probe.core.redact import Redactor, redact_url, url_secrets
from probe.core.times import readable_utc, rfc3339_millis
from probe.core.units import timed_out_after
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json

log = logging.getLogger("probe.alerts.alertmanager")

ALERTNAME = "ProbeCheckFailing"
TEST_ALERTNAME = "ProbeAlertTest"
ENDS_AHEAD = 4  # firing alerts carry endsAt = now + ENDS_AHEAD x resend, like Prometheus
# Each replica gets `timeout`; the whole send a little more, so that a replica that hangs
# is reported as such and does not cancel the answer of one that accepted.
SEND_GRACE = 1.0


def labels(alert: Alert, agent: str, severity: str | None = None) -> dict[str, str]:
    found = {
        "alertname": TEST_ALERTNAME if alert.kind is Kind.TEST else ALERTNAME,
        "check": alert.check,
        "severity": severity or alert.severity.value,
        "agent": agent,
    }
    if alert.component:  # Alertmanager treats an empty label as absent; leave it out
        found["component"] = alert.component
    if alert.measure:  # `up` when the check could not run; absent on test alerts
        found["measure"] = alert.measure
    return found


def _entry(alert: Alert, agent: str, ends: float, severity: str | None = None) -> dict[str, Any]:
    key = alert_key(alert.check, alert.component)
    return {
        "labels": labels(alert, agent, severity),
        "annotations": {
            "summary": f"{key}: {alert.summary}",
            "description": (
                f"{(severity or alert.severity.value).upper()} on {agent}: {key}: "
                f"{alert.summary} (since {readable_utc(alert.since)})"
            ),
        },
        "startsAt": rfc3339_millis(alert.fired_at or alert.since),
        "endsAt": rfc3339_millis(ends),
    }


def build_alerts(notification: Notification, resend: float) -> list[dict[str, Any]]:
    """The JSON array for one notification; pure."""
    agent = notification.agent
    body: list[dict[str, Any]] = []
    for alert in notification.alerts:
        if alert.kind is Kind.RESOLVED:
            body.append(_entry(alert, agent, alert.at))
            continue
        body.append(_entry(alert, agent, alert.at + ENDS_AHEAD * resend))
        if alert.kind is Kind.ESCALATED and alert.previous_severity is not None:
            # The warning is a different alert to Alertmanager (other labels): close it.
            body.append(_entry(alert, agent, alert.at, alert.previous_severity.value))
    return body


class AlertmanagerNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"urls"})

    type: Literal["alertmanager"]
    urls: list[str] = Field(min_length=1)
    resend: Duration = 60.0

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not is_http_url(url):
                shown = redact_url(url)
                raise ValueError(f"expected URLs like http://alertmanager:9093, got {shown!r}")
        return value

    def secrets(self) -> list[str]:
        return [s for url in self.urls for s in url_secrets(url)]


class AlertmanagerNotifier(Notifier[AlertmanagerNotifierConfig]):
    """Also a `Resender`: Alertmanager expires alerts that are not sent again."""

    config_model = AlertmanagerNotifierConfig

    def __init__(
        self,
        config: AlertmanagerNotifierConfig,
        session: aiohttp.ClientSession,
        redactor: Redactor,
    ) -> None:
        super().__init__(config, session, redactor)
        self.timeout = config.timeout + SEND_GRACE
        self.connect_timeout = connect_timeout(session, config.timeout)
        self.endpoints = [f"{url.rstrip('/')}/api/v2/alerts" for url in config.urls]
        self.description = "alertmanager " + ", ".join(redact_url(u) for u in config.urls)

    async def send(self, notification: Notification) -> None:
        """Accepted by at least one replica counts as sent: firing alerts are re-sent every
        `resend` anyway, and a replica that missed a resolve lets it expire at `endsAt`."""
        await self.post(build_alerts(notification, self.config.resend))

    @property
    def resend_interval(self) -> float:
        return self.config.resend

    async def resend(self, alerts: list[Alert], agent: str, now: float) -> None:
        if not alerts:
            return
        notification = Notification(agent=agent, created=now, alerts=tuple(alerts))
        try:
            async with asyncio.timeout(self.timeout):
                await self.send(notification)
        except (DeliveryError, TimeoutError) as exc:
            detail = exc.detail if isinstance(exc, DeliveryError) else timed_out_after(self.timeout)
            log.warning(
                "re-sending %d firing alerts to %s failed: %s",
                len(alerts),
                self.description,
                detail,
                extra={"notifier": "alertmanager", "detail": detail},
            )

    async def post(self, body: list[dict[str, Any]]) -> None:
        results = await asyncio.gather(*(self._post_one(url, body) for url in self.endpoints))
        errors = [r for r in results if r is not None]
        if len(errors) < len(results):
            for error in errors:  # each detail starts with its replica's URL
                log.warning(
                    "an alertmanager replica did not take the alerts, another did: %s",
                    error.detail,
                    extra={"notifier": "alertmanager", "detail": error.detail},
                )
            return
        retryable = any(e.retryable for e in errors)
        detail = "; ".join(e.detail for e in errors)
        retry_after = max((e.retry_after or 0.0 for e in errors), default=0.0) or None
        raise DeliveryError(detail, retryable, retry_after)

    async def _post_one(self, url: str, body: list[dict[str, Any]]) -> DeliveryError | None:
        return await post_json(
            self.session,
            url,
            body,
            timeout=self.config.timeout,
            connect_timeout=self.connect_timeout,
            redact=self.redact,
        )
