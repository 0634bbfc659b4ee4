"""A generic webhook: one JSON document per notification, for anything that takes a POST
(an incident tool, a chat bridge, a serverless function).

    {"agent": "botflow-probe", "kind": "firing",
     "alerts": [{"check", "component", "measure", "severity", "summary",
                 "since", "at", "lasted"}]}

`kind` is the notification's: the one kind all its alerts share, else the most urgent
(firing > escalated > reminder > resolved). Times are RFC 3339 UTC; `lasted` is seconds
from `since` to `at`. `build_body` is pure; `send` only does the I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, SecretStr, field_validator

from probe.contract.notification import Kind, Notification
from probe.contract.plugin import Notifier, NotifierConfig
from probe.core.fields import is_http_url, one_line_headers
from probe.core.redact import Redactor, url_secrets
from probe.core.times import rfc3339_millis
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json

# The notification's kind when its alerts differ: the one that asks most of a reader.
_KIND_ORDER = (Kind.FIRING, Kind.ESCALATED, Kind.REMINDER, Kind.RESOLVED, Kind.TEST)


class WebhookNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url", "headers"})

    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not is_http_url(value.get_secret_value()):
            raise ValueError("expected an http:// or https:// URL like https://example.com/hook")
        return value

    @field_validator("headers")
    @classmethod
    def _one_line_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return one_line_headers(value)

    def secrets(self) -> list[str]:
        # A hook URL is often its own credential (a token in the path), and header values
        # are API keys more often than not: all of them are kept out of everything printed.
        url = self.url.get_secret_value()
        found = [url, *url_secrets(url)]
        for value in self.headers.values():
            text = value.get_secret_value()
            if text:
                # `Bearer abc123`: the token alone may be echoed too.
                found += [text, *text.split()[-1:]]
        return found


def build_body(notification: Notification, redact: Redactor) -> dict[str, Any]:
    kinds = {alert.kind for alert in notification.alerts}
    kind = next((k for k in _KIND_ORDER if k in kinds), Kind.TEST)
    return {
        "agent": notification.agent,
        "kind": kind.value,
        "alerts": [
            {
                "check": alert.check,
                "component": alert.component,
                "measure": alert.measure,
                "severity": alert.severity.value,
                "summary": redact(alert.summary),
                "since": rfc3339_millis(alert.since),
                "at": rfc3339_millis(alert.at),
                "lasted": round(alert.lasted, 3),
            }
            for alert in notification.alerts
        ],
    }


class WebhookNotifier(Notifier[WebhookNotifierConfig]):
    config_model = WebhookNotifierConfig

    def __init__(
        self, config: WebhookNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        parts = urlsplit(config.url.get_secret_value())
        self.description = f"webhook {parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    async def send(self, notification: Notification) -> None:
        error = await post_json(
            self.session,
            self.config.url.get_secret_value(),
            build_body(notification, self.redact),
            timeout=self.config.timeout,
            connect_timeout=self.connect_timeout,
            redact=self.redact,
            headers={k: v.get_secret_value() for k, v in self.config.headers.items()},
        )
        if error is not None:
            raise error
