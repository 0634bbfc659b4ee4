"""Slack: incoming webhook or bot token + chat.postMessage, Block Kit with a colour bar.

`build_payload` is pure; `SlackNotifier.send` only does the I/O; delivery.py retries.
A webhook is one plain POST judged by its status alone: slack-sdk's webhook client decodes
every answer as UTF-8, so a gateway's 2xx with another body read as a failure, and every
retry posted the message again. chat.postMessage is one plain POST: slack-sdk's web client
fails with an AttributeError on an answer that is not a JSON object (a proxy's `ok`, an
HTML page), and its status code is needed for the words.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr, field_validator, model_validator

from probe.contract.notification import (
    Alert,
    Kind,
    Notification,
    event_words,
    headline,
    plain_text,
    shown,
    status_word,
)
from probe.contract.plugin import DeliveryError, Notifier, NotifierConfig
from probe.core.fields import is_http_url
from probe.core.redact import Redactor, url_secrets
from probe.notifiers.errors import (
    REDIRECT_STATUSES,
    RedirectRefused,
    connect_timeout,
    connection_error,
    http_error,
)

# slack-sdk (43 modules, about 3 MB) is imported by the bot-token path only: a webhook, or
# a notifier the config leaves off, never needs it.
if TYPE_CHECKING:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

COLOURS = {"critical": "#E01E5A", "warning": "#ECB22E", "resolved": "#2EB67D", "test": "#1D9BD1"}
# Slack allows 50 blocks per message; keep room for the header and the overflow line.
MAX_ALERTS_SHOWN = 40
_HEADER_LIMIT = 150  # Slack's cap on plain_text in a header block


def colour(alert: Alert) -> str:
    return COLOURS[status_word(alert).lower()]


def _section(alert: Alert) -> dict[str, Any]:
    title = f"*{status_word(alert)}*  `{alert.key}`"
    if alert.previous_summary:
        title += "  (cause changed)"
    elif alert.kind is Kind.ESCALATED:
        title += "  (escalated from warning)"
    elif alert.kind is Kind.REMINDER:
        title += "  (still firing)"
    when = event_words(alert)
    text = f"{title}\n{alert.summary}\n_{when}_"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _header_emoji(notification: Notification) -> str:
    kinds = {status_word(a) for a in notification.alerts}
    if "CRITICAL" in kinds:
        return ":red_circle:"
    if "WARNING" in kinds:
        return ":large_yellow_circle:"
    if "RESOLVED" in kinds:
        return ":large_green_circle:"
    return ":bell:"


def build_payload(notification: Notification) -> dict[str, Any]:
    """One message: a header, then one coloured attachment (section) per alert."""
    header = f"{_header_emoji(notification)} {headline(notification)}"[:_HEADER_LIMIT]
    readable = shown(notification)
    listed = readable[:MAX_ALERTS_SHOWN]
    attachments: list[dict[str, Any]] = [
        {
            "color": colour(alert),
            "fallback": f"{status_word(alert)} {alert.key}",
            "blocks": [_section(alert)],
        }
        for alert in listed
    ]
    hidden = len(readable) - len(listed)
    if hidden > 0:
        worst = max(readable[len(listed) :], key=lambda a: a.severity.rank)
        more = {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"and {hidden} more (see the plain text of this message)",
                }
            ],
        }
        attachments.append({"color": COLOURS[worst.severity.value], "blocks": [more]})
    return {
        "text": plain_text(notification),
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": header}}],
        "attachments": attachments,
    }


class SlackNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"webhook_url", "token"})

    type: Literal["slack"]
    webhook_url: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    channel: str = ""
    # Web API base for token + channel; only changed for Slack-compatible gateways and tests.
    api_url: str = "https://slack.com/api/"

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not is_http_url(url):
            raise ValueError("expected an https:// URL like https://hooks.slack.com/services/...")
        return value

    @model_validator(mode="after")
    def _one_way_to_post(self) -> SlackNotifierConfig:
        has_hook = bool(self.webhook_url.get_secret_value())
        has_token = bool(self.token.get_secret_value())
        if has_hook and has_token:
            raise ValueError("set either webhook_url or token + channel, not both")
        if has_token and not self.channel:
            raise ValueError("token needs a channel")
        return self

    def unconfigured(self) -> str:
        # An empty webhook URL (unset env var with an empty default) turns Slack off.
        if self.webhook_url.get_secret_value() or self.token.get_secret_value():
            return ""
        return "webhook_url is empty"

    def secrets(self) -> list[str]:
        hook = self.webhook_url.get_secret_value()
        return [s for s in (hook, self.token.get_secret_value()) if s] + url_secrets(hook)


class SlackNotifier(Notifier[SlackNotifierConfig]):
    config_model = SlackNotifierConfig

    def __init__(
        self, config: SlackNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        hook = config.webhook_url.get_secret_value()
        self._hook = hook
        self._web: AsyncWebClient | None = None
        # Retries are ours (delivery.py): slack-sdk's 429 handler sleeps without a cap.
        if hook:
            self.description = f"slack webhook {urlsplit(hook).hostname or ''}".rstrip()
        else:
            from slack_sdk.web.async_client import AsyncWebClient

            self._web = AsyncWebClient(
                token=config.token.get_secret_value(),
                base_url=config.api_url,
                session=session,
                retry_handlers=[],
            )
            self.description = f"slack {config.channel}"

    async def send(self, notification: Notification) -> None:
        payload = build_payload(notification)
        try:
            if self._hook:
                await self._send_webhook(self._hook, payload, time.time())
            elif self._web is not None:
                await self._post_message(self._web, payload, time.time())
        except (aiohttp.ClientError, OSError) as exc:  # OSError includes TimeoutError
            raise connection_error(exc, self.timeout, self.connect_timeout, self.redact) from None

    async def _send_webhook(self, hook: str, payload: dict[str, Any], now: float) -> None:
        async with self.session.post(hook, json=payload, allow_redirects=False) as response:
            if response.status in REDIRECT_STATUSES:
                raise RedirectRefused(response.status, response.headers.get("Location", ""), hook)
            if response.status >= 300:
                raise http_error(response.status, response.headers.get("Retry-After"), now)

    async def _post_message(
        self, client: AsyncWebClient, payload: dict[str, Any], now: float
    ) -> None:
        from slack_sdk.errors import SlackApiError

        try:
            await client.chat_postMessage(channel=self.config.channel, **payload)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status >= 400:  # Slack answers rate limits with 429 and Retry-After
                retry_after = exc.response.headers.get("Retry-After")
                raise http_error(status, _header(retry_after), now) from None
            error = self.redact(_api_error(exc))
            raise DeliveryError(f"Slack refused the message: {error}", retryable=False) from None
        except (AttributeError, TypeError, ValueError):
            # slack-sdk trips over an answer that is not a JSON object (a wrong api_url, a
            # proxy's login page). Sending again would meet the same answer, or post twice.
            raise DeliveryError(
                "Slack answered something that is not Slack API JSON", retryable=False
            ) from None


def _api_error(exc: SlackApiError) -> str:
    try:
        return str(exc.response["error"])[:100]
    except (KeyError, TypeError, ValueError):
        return "no reason given"


def _header(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)
