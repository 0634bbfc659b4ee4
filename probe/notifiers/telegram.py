"""Telegram: the Bot API's `sendMessage` with `parse_mode: HTML`.

The bot token is part of the URL path (`/bot<token>/sendMessage`), so the URL itself is a
secret: the token and `bot<token>` are both registered for redaction, and every error
this notifier raises is built from words, never from the client's exception text. Every
piece of alert text is HTML-escaped (`<`, `>`, `&`), since Telegram rejects the whole
message on one stray `<`. A message is at most 4,096 characters; a 429 says its wait
in `parameters.retry_after`, which is honoured. `build_message` is pure.
"""

from __future__ import annotations

import html
import json
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import SecretStr, field_validator

from probe.contract.notification import Alert, Notification, event_words, headline, shown
from probe.contract.notification import status_word as _word
from probe.contract.plugin import DeliveryError, Notifier, NotifierConfig
from probe.core.fields import is_http_url
from probe.core.redact import MASK, Redactor
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json

API_URL = "https://api.telegram.org"
MESSAGE_LIMIT = 4096
ICONS = {
    "CRITICAL": "\U0001f534",
    "WARNING": "\U0001f7e1",
    "RESOLVED": "\U0001f7e2",
    "TEST": "\U0001f514",
}


def _block(alert: Alert) -> str:
    word = _word(alert)
    return (
        f"{ICONS[word]} <b>{word}</b> <code>{html.escape(alert.key)}</code>\n"
        f"{html.escape(alert.summary)}\n<i>{html.escape(event_words(alert))}</i>"
    )


def build_message(
    notification: Notification, chat_id: str | int, public_url: str = ""
) -> dict[str, Any]:
    """The sendMessage body; its text is escaped HTML within Telegram's 4,096; pure."""
    head = f"<b>{html.escape(headline(notification))}</b>"
    tail = ""
    if public_url:
        tail = f'\n\n<a href="{html.escape(public_url + "/status", quote=True)}">status page</a>'
    readable = shown(notification)
    blocks: list[str] = []
    # Room for the overflow line, so the message never goes over the limit.
    budget = MESSAGE_LIMIT - len(head) - len(tail) - 40
    for index, alert in enumerate(readable):
        block = _block(alert)
        if len(block) + 2 > budget:
            blocks.append(f"<i>and {len(readable) - index} more</i>")
            break
        blocks.append(block)
        budget -= len(block) + 2
    return {
        "chat_id": chat_id,
        "text": "\n\n".join([head, *blocks]) + tail,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


def retry_after(body: str) -> float | None:
    """`{"ok": false, "error_code": 429, "parameters": {"retry_after": 5}}` -> 5."""
    try:
        wait = json.loads(body)["parameters"]["retry_after"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(wait) if isinstance(wait, int | float) and wait >= 0 else None


class TelegramNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"bot_token"})

    type: Literal["telegram"]
    bot_token: SecretStr
    chat_id: int | str  # a number, or @channelusername
    url: str = API_URL  # a self-hosted Bot API server

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        # `123456789:AA...` as @BotFather gives it; anything with a slash breaks the path.
        if token and (":" not in token or any(c in token for c in "/?# ")):
            raise ValueError("expected a bot token like 123456789:AAE... as @BotFather gives it")
        return value

    @field_validator("chat_id")
    @classmethod
    def _chat(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a chat id like -1001234567890 or @channelname")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not is_http_url(value):
            raise ValueError(f"expected an http:// or https:// URL like {API_URL}")
        return value.rstrip("/")

    def unconfigured(self) -> str:
        return "" if self.bot_token.get_secret_value() else "bot_token is empty"

    def secrets(self) -> list[str]:
        token = self.bot_token.get_secret_value()
        # `bot<token>` too: the redactor masks whole words, and in the path the token
        # follows `bot` with no separator.
        return [token, f"bot{token}"] if token else []


class TelegramNotifier(Notifier[TelegramNotifierConfig]):
    config_model = TelegramNotifierConfig

    def __init__(
        self, config: TelegramNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        self.description = f"telegram chat {config.chat_id}"

    async def send(self, notification: Notification) -> None:
        token = self.config.bot_token.get_secret_value()
        try:
            error = await post_json(
                self.session,
                f"{self.config.url}/bot{token}/sendMessage",
                build_message(notification, self.config.chat_id, self.public_url),
                timeout=self.config.timeout,
                connect_timeout=self.connect_timeout,
                redact=self.redact,
                read_wait=retry_after,
            )
        except Exception as exc:
            # A client surprise (a URL aiohttp refuses) quotes the URL: say what it was
            # without it, so no log or `probe alert-test` line can carry the token.
            words = self.redact(str(exc)).replace(token, MASK) or "no reason given"
            raise DeliveryError(
                f"telegram: the request could not be made: {words}", False
            ) from None
        if error is not None:
            raise DeliveryError(
                error.detail.replace(token, MASK), error.retryable, error.retry_after
            )
