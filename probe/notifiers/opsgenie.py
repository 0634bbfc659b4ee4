"""Opsgenie: Alert API v2, one request per alert.

`alias` is the alert key (`agent/check/component/measure`): a create with the alias of an
open alert only raises its count, and the resolve closes it through
`POST /v2/alerts/{alias}/close?identifierType=alias`. Criticals are P1, warnings P3.
`build_requests` is pure; `send` only does the I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import Field, SecretStr, field_validator

from probe.contract.notification import Alert, Kind, Notification, event_words, status_word
from probe.contract.plugin import Notifier, NotifierConfig
from probe.core.fields import is_http_url
from probe.core.redact import Redactor, url_secrets
from probe.core.units import format_duration
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json
from probe.notifiers.progress import Progress

REGIONS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
PRIORITIES = {"critical": "P1", "warning": "P3"}
TEST_PRIORITY = "P5"
# Opsgenie's documented limits on a create request.
MESSAGE_LIMIT = 130
ALIAS_LIMIT = 512
DESCRIPTION_LIMIT = 15000
SOURCE_LIMIT = 100
ENTITY_LIMIT = 512
TAG_LIMIT = 50
TAGS_MAX = 20


def alias(agent: str, alert: Alert) -> str:
    return f"{agent}/{alert.check}/{alert.component}/{alert.measure}"[:ALIAS_LIMIT]


def _create(agent: str, alert: Alert, status_url: str, tags: list[str]) -> dict[str, Any]:
    priority = TEST_PRIORITY if alert.kind is Kind.TEST else PRIORITIES[alert.severity.value]
    description = f"{alert.summary}\n{event_words(alert)}"
    if status_url:
        description += f"\nStatus page: {status_url}"
    return {
        "message": f"{status_word(alert)} {alert.key}: {alert.summary}"[:MESSAGE_LIMIT],
        "alias": alias(agent, alert),
        "description": description[:DESCRIPTION_LIMIT],
        "source": agent[:SOURCE_LIMIT],
        "entity": alert.key[:ENTITY_LIMIT],
        "priority": priority,
        "tags": [t[:TAG_LIMIT] for t in ["probe", alert.severity.value, alert.check, *tags]][
            :TAGS_MAX
        ],
        "details": {
            "agent": agent,
            "check": alert.check,
            "component": alert.component,
            "measure": alert.measure,
            "severity": alert.severity.value,
            "kind": alert.kind.value,
        },
    }


def _close(agent: str, alert: Alert) -> tuple[str, dict[str, Any]]:
    path = f"/v2/alerts/{quote(alias(agent, alert), safe='')}/close?identifierType=alias"
    note = f"resolved after {format_duration(alert.lasted)}: {alert.summary}"
    return path, {"source": agent[:SOURCE_LIMIT], "note": note[:DESCRIPTION_LIMIT]}


def build_requests(
    notification: Notification, public_url: str = "", tags: list[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) of each request for one notification, in order; pure."""
    agent = notification.agent
    status_url = f"{public_url}/status" if public_url else ""
    requests: list[tuple[str, dict[str, Any]]] = []
    for alert in notification.alerts:
        if alert.kind is Kind.RESOLVED:
            requests.append(_close(agent, alert))
            continue
        requests.append(("/v2/alerts", _create(agent, alert, status_url, tags or [])))
        if alert.kind is Kind.TEST:
            requests.append(_close(agent, alert))  # a test must not stay open, nor page
    return requests


class OpsgenieNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key", "url"})

    type: Literal["opsgenie"]
    api_key: SecretStr
    region: Literal["us", "eu"] = "us"
    url: str = ""  # overrides the region's API base URL
    tags: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not is_http_url(value):
            raise ValueError("expected an http:// or https:// URL like https://api.opsgenie.com")
        return value.rstrip("/")

    @property
    def base_url(self) -> str:
        return self.url or REGIONS[self.region]

    def unconfigured(self) -> str:
        return "" if self.api_key.get_secret_value() else "api_key is empty"

    def secrets(self) -> list[str]:
        return [self.api_key.get_secret_value(), *url_secrets(self.url)]


class OpsgenieNotifier(Notifier[OpsgenieNotifierConfig]):
    config_model = OpsgenieNotifierConfig

    def __init__(
        self, config: OpsgenieNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        self._progress = Progress()
        self.description = f"opsgenie {urlsplit(config.base_url).hostname or ''}".rstrip()

    async def send(self, notification: Notification) -> None:
        """Requests in order; a failure stops there, and the retry sends those not yet
        accepted (were one sent twice: a create with an open alias, or a second close,
        changes nothing)."""
        headers = {"Authorization": f"GenieKey {self.config.api_key.get_secret_value()}"}
        accepted = self._progress.accepted(notification)
        requests = build_requests(notification, self.public_url, self.config.tags)
        for index, (path, body) in enumerate(requests):
            if index in accepted:
                continue
            error = await post_json(
                self.session,
                self.config.base_url + path,
                body,
                timeout=self.config.timeout,
                connect_timeout=self.connect_timeout,
                redact=self.redact,
                headers=headers,
            )
            if error is not None:
                raise error
            accepted.add(index)
        self._progress.finished(notification)
