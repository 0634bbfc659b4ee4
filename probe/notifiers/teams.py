"""Microsoft Teams: a Workflows (Power Automate) webhook that posts an Adaptive Card.

Microsoft retired the Office 365 connector cards (`MessageCard`); a Workflows webhook takes
a `message` whose attachment is an Adaptive Card. Version 1.4 is what Teams renders on
desktop, web and mobile alike. Each alert is a container with a colour (`attention` red,
`warning` amber, `good` green). `build_card` is pure; `send` only does the I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr, field_validator

from probe.contract.notification import (
    Alert,
    Notification,
    event_words,
    headline,
    shown,
    status_word,
)
from probe.contract.plugin import Notifier, NotifierConfig
from probe.core.fields import is_http_url
from probe.core.redact import Redactor, url_secrets
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json

CARD_VERSION = "1.4"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
STYLES = {"CRITICAL": "attention", "WARNING": "warning", "RESOLVED": "good", "TEST": "accent"}
# Teams refuses messages over about 28 KB: a Redis outage of 40 queues must still fit.
MAX_ALERTS_SHOWN = 20
TEXT_LIMIT = 2000


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text[:TEXT_LIMIT], "wrap": True, **style}


def _container(alert: Alert) -> dict[str, Any]:
    word = status_word(alert)
    return {
        "type": "Container",
        "style": STYLES[word],
        "bleed": False,
        "items": [
            _text(f"**{word}** {alert.key}", weight="Bolder"),
            _text(alert.summary),
            _text(event_words(alert), isSubtle=True, size="Small", spacing="None"),
        ],
    }


def build_card(notification: Notification, public_url: str = "") -> dict[str, Any]:
    """The Workflows webhook body: a message with one Adaptive Card; pure."""
    readable = shown(notification)
    body: list[dict[str, Any]] = [_text(headline(notification), size="Medium", weight="Bolder")]
    body += [_container(alert) for alert in readable[:MAX_ALERTS_SHOWN]]
    hidden = len(readable) - MAX_ALERTS_SHOWN
    if hidden > 0:
        body.append(_text(f"and {hidden} more", isSubtle=True))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if public_url:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Status page", "url": f"{public_url}/status"}
        ]
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


class TeamsNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"webhook_url"})

    type: Literal["teams"]
    webhook_url: SecretStr

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not is_http_url(url):
            raise ValueError(
                "expected the https:// URL of a Workflows webhook (When a Teams webhook request"
                " is received)"
            )
        return value

    def unconfigured(self) -> str:
        return "" if self.webhook_url.get_secret_value() else "webhook_url is empty"

    def secrets(self) -> list[str]:
        # The URL's `sig` query value is the credential; the whole URL is kept out too.
        url = self.webhook_url.get_secret_value()
        return [url, *url_secrets(url)]


class TeamsNotifier(Notifier[TeamsNotifierConfig]):
    config_model = TeamsNotifierConfig

    def __init__(
        self, config: TeamsNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        host = urlsplit(config.webhook_url.get_secret_value()).hostname or ""
        self.description = f"teams {host}".rstrip()

    async def send(self, notification: Notification) -> None:
        error = await post_json(
            self.session,
            self.config.webhook_url.get_secret_value(),
            build_card(notification, self.public_url),
            timeout=self.config.timeout,
            connect_timeout=self.connect_timeout,
            redact=self.redact,
        )
        if error is not None:
            raise error
