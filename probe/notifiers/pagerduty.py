"""PagerDuty: Events API v2 (`POST /v2/enqueue`), one event per alert.

Each alert key is one PagerDuty alert: `dedup_key` is `agent/check/component/measure`, so
a trigger opens (or adds to) the incident and the resolve of the same key closes it, with
no state to keep. Escalations and reminders are triggers with the same key: PagerDuty
folds them into the open alert. `build_events` is pure; `send` only does the I/O.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr, field_validator

from probe.contract.notification import Alert, Kind, Notification, event_words, status_word
from probe.contract.plugin import Notifier, NotifierConfig
from probe.core.fields import is_http_url
from probe.core.redact import Redactor, url_secrets
from probe.core.times import rfc3339_millis
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json
from probe.notifiers.progress import Progress

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT = 1024  # PagerDuty rejects a longer payload.summary
DEDUP_KEY_LIMIT = 255
ROUTING_KEY_LENGTH = 32
SOURCE_SHOWN = 255  # a host name's length: the agent's name, within reason


def dedup_key(agent: str, alert: Alert) -> str:
    """`botflow-probe/queues/ai-assistant/backlog`; a whole-check alert has an empty
    component (`botflow-probe/database//up`), so no two keys can read the same."""
    key = f"{agent}/{alert.check}/{alert.component}/{alert.measure}"
    if len(key) <= DEDUP_KEY_LIMIT:
        return key
    # A very long agent name: keep a readable head and make the tail unique.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{key[: DEDUP_KEY_LIMIT - len(digest) - 1]}#{digest}"


def _summary(agent: str, alert: Alert) -> str:
    return f"{status_word(alert)} {alert.key} on {agent}: {alert.summary}"[:SUMMARY_LIMIT]


def _trigger(
    agent: str, alert: Alert, routing_key: str, status_url: str, severity: str
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(agent, alert),
        "payload": {
            "summary": _summary(agent, alert),
            "source": agent[:SOURCE_SHOWN],
            "severity": severity,
            "timestamp": rfc3339_millis(alert.fired_at or alert.at),
            "component": alert.component or alert.check,
            "group": alert.check,
            "class": alert.measure or "up",
            "custom_details": {
                "check": alert.check,
                "component": alert.component,
                "measure": alert.measure,
                "kind": alert.kind.value,
                "summary": alert.summary,
                "when": event_words(alert),
            },
        },
        "client": f"probe ({agent})",
    }
    if status_url:
        event["client_url"] = status_url
        event["links"] = [{"href": status_url, "text": f"{agent} status page"}]
    return event


def build_events(
    notification: Notification, routing_key: str, public_url: str = ""
) -> list[dict[str, Any]]:
    """The events for one notification, in order; pure."""
    agent = notification.agent
    status_url = f"{public_url}/status" if public_url else ""
    events: list[dict[str, Any]] = []
    for alert in notification.alerts:
        resolve = {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key(agent, alert),
        }
        if alert.kind is Kind.RESOLVED:
            events.append(resolve)
        elif alert.kind is Kind.TEST:
            # Seen in the service's alert log, closed at once: a test must not page anyone.
            events += [_trigger(agent, alert, routing_key, status_url, "info"), resolve]
        else:
            events.append(_trigger(agent, alert, routing_key, status_url, alert.severity.value))
    return events


class PagerDutyNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"routing_key", "url"})

    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = EVENTS_URL  # another Events API v2 endpoint (a proxy, a test stand-in)

    @field_validator("routing_key")
    @classmethod
    def _integration_key(cls, value: SecretStr) -> SecretStr:
        length = len(value.get_secret_value())
        if length not in (0, ROUTING_KEY_LENGTH):
            raise ValueError(
                f"expected the {ROUTING_KEY_LENGTH}-character integration key of an Events API"
                f" v2 integration, got {length} characters"
            )
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not is_http_url(value):
            raise ValueError(f"expected an http:// or https:// URL like {EVENTS_URL}")
        return value

    def unconfigured(self) -> str:
        return "" if self.routing_key.get_secret_value() else "routing_key is empty"

    def secrets(self) -> list[str]:
        return [self.routing_key.get_secret_value(), *url_secrets(self.url)]


class PagerDutyNotifier(Notifier[PagerDutyNotifierConfig]):
    config_model = PagerDutyNotifierConfig

    def __init__(
        self, config: PagerDutyNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        self._progress = Progress()
        self.description = f"pagerduty {urlsplit(config.url).hostname or ''}".rstrip()

    async def send(self, notification: Notification) -> None:
        """Events in order; a failure stops there, and the retry sends the events not yet
        accepted (were one sent twice, the same dedup_key changes nothing in PagerDuty)."""
        key = self.config.routing_key.get_secret_value()
        accepted = self._progress.accepted(notification)
        for index, event in enumerate(build_events(notification, key, self.public_url)):
            if index in accepted:
                continue
            error = await post_json(
                self.session,
                self.config.url,
                event,
                timeout=self.config.timeout,
                connect_timeout=self.connect_timeout,
                redact=self.redact,
            )
            if error is not None:
                raise error
            accepted.add(index)
        self._progress.finished(notification)
