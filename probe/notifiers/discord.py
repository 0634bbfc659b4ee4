"""Discord: an execute-webhook POST with one embed per alert, each with a colour bar.

Within Discord's limits: 10 embeds a message, a title of 256 and a description of 4,096
characters, 6,000 characters over all embeds, 2,000 of `content`. Mentions are switched
off, so a summary holding `@everyone` pings nobody. A 429 says its wait in the body
(`retry_after`, seconds); that is honoured. `build_payload` is pure; `send` does the I/O.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr, field_validator

from probe.contract.notification import (
    Alert,
    Notification,
    alert_line,
    event_words,
    headline,
    shown,
    status_word,
)
from probe.contract.plugin import Notifier, NotifierConfig
from probe.core.fields import is_http_url
from probe.core.redact import Redactor, url_secrets
from probe.core.times import rfc3339_millis
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json

COLOURS = {"CRITICAL": 0xE01E5A, "WARNING": 0xECB22E, "RESOLVED": 0x2EB67D, "TEST": 0x1D9BD1}
MAX_EMBEDS = 10
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FOOTER_SHOWN = 100  # of the 2,048 allowed: the budget of 6,000 is for the alerts
EMBEDS_TOTAL_LIMIT = 6000
CONTENT_LIMIT = 2000


def _embed(alert: Alert, agent: str, status_url: str) -> dict[str, Any]:
    word = status_word(alert)
    embed: dict[str, Any] = {
        "title": f"{word} {alert.key}"[:TITLE_LIMIT],
        "description": f"{alert.summary}\n*{event_words(alert)}*"[:DESCRIPTION_LIMIT],
        "color": COLOURS[word],
        "timestamp": rfc3339_millis(alert.at),
        "footer": {"text": agent[:FOOTER_SHOWN]},
    }
    if status_url:
        embed["url"] = status_url
    return embed


def _size(embed: dict[str, Any]) -> int:
    return len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])


def build_payload(notification: Notification, public_url: str = "") -> dict[str, Any]:
    """One message: the headline as content, one embed per alert; pure."""
    agent = notification.agent
    status_url = f"{public_url}/status" if public_url else ""
    readable = shown(notification)
    embeds: list[dict[str, Any]] = []
    used = 0
    for index, alert in enumerate(readable):
        embed = _embed(alert, agent, status_url)
        # Keep the last slot (and its share of the 6,000) for the overflow embed.
        room = len(embeds) < MAX_EMBEDS - 1 or index == len(readable) - 1
        if not room or used + _size(embed) > EMBEDS_TOTAL_LIMIT - 600:
            embeds.append(_overflow(readable[index:], agent))
            break
        embeds.append(embed)
        used += _size(embed)
    return {
        "content": headline(notification)[:CONTENT_LIMIT],
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    }


def _overflow(rest: list[Alert], agent: str) -> dict[str, Any]:
    worst = max(rest, key=lambda a: (status_word(a) == "CRITICAL", status_word(a) == "WARNING"))
    lines = "\n".join(alert_line(a) for a in rest)
    return {
        "title": f"and {len(rest)} more",
        "description": lines[:500],
        "color": COLOURS[status_word(worst)],
        "footer": {"text": agent[:FOOTER_SHOWN]},
    }


def retry_after(body: str) -> float | None:
    """The wait of Discord's 429 body: `{"message": ..., "retry_after": 1.5, "global": false}`."""
    try:
        wait = json.loads(body).get("retry_after")
    except (ValueError, AttributeError):
        return None
    return float(wait) if isinstance(wait, int | float) and wait >= 0 else None


class DiscordNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"webhook_url"})

    type: Literal["discord"]
    webhook_url: SecretStr
    username: str = ""  # shown as the sender instead of the webhook's own name

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not is_http_url(url):
            raise ValueError(
                "expected an https:// URL like https://discord.com/api/webhooks/<id>/<token>"
            )
        return value

    def unconfigured(self) -> str:
        return "" if self.webhook_url.get_secret_value() else "webhook_url is empty"

    def secrets(self) -> list[str]:
        # The last path segment is the webhook's token.
        url = self.webhook_url.get_secret_value()
        token = urlsplit(url).path.rstrip("/").rpartition("/")[2]
        return [url, *([token] if token else []), *url_secrets(url)]


class DiscordNotifier(Notifier[DiscordNotifierConfig]):
    config_model = DiscordNotifierConfig

    def __init__(
        self, config: DiscordNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        host = urlsplit(config.webhook_url.get_secret_value()).hostname or ""
        self.description = f"discord {host}".rstrip()

    async def send(self, notification: Notification) -> None:
        payload = build_payload(notification, self.public_url)
        if self.config.username:
            payload["username"] = self.config.username[:80]
        error = await post_json(
            self.session,
            self.config.webhook_url.get_secret_value(),
            payload,
            timeout=self.config.timeout,
            connect_timeout=self.connect_timeout,
            redact=self.redact,
            read_wait=retry_after,
        )
        if error is not None:
            raise error
