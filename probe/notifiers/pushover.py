"""Pushover: `POST /1/messages.json` with the application token and the user (or group) key.

Priority from severity: a critical is 1 (high: it bypasses the user's quiet hours), a
warning 0, a resolve -1 (quiet). With `emergency: true` a critical is 2 instead, which
Pushover repeats every `retry` until someone acknowledges it or `expire` passes.
`build_message` is pure; `send` only does the I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import Field, SecretStr, field_validator

from probe.contract.notification import Notification, alert_line, headline, shown, status_word
from probe.contract.plugin import Notifier, NotifierConfig
from probe.core.fields import Duration, is_http_url
from probe.core.redact import Redactor, url_secrets
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json

API_URL = "https://api.pushover.net/1/messages.json"
PRIORITIES = {"CRITICAL": 1, "WARNING": 0, "RESOLVED": -1, "TEST": 0}
EMERGENCY = 2
# Pushover's limits: a message of 1,024 characters, a title of 250, a URL of 512.
MESSAGE_LIMIT = 1024
TITLE_LIMIT = 250
URL_LIMIT = 512


def build_message(
    notification: Notification,
    token: str,
    user: str,
    public_url: str = "",
    emergency: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The JSON body; `emergency` is (retry, expire) seconds when criticals are priority 2."""
    readable = shown(notification)
    priority = max((PRIORITIES[status_word(a)] for a in readable), default=0)
    text = "\n".join(alert_line(a) for a in readable)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 4] + " ..."
    body: dict[str, Any] = {
        "token": token,
        "user": user,
        "title": headline(notification)[:TITLE_LIMIT],
        "message": text or headline(notification),
        "priority": priority,
        "timestamp": int(notification.created),
    }
    if priority == PRIORITIES["CRITICAL"] and emergency is not None:
        body |= {"priority": EMERGENCY, "retry": emergency[0], "expire": emergency[1]}
    if public_url and len(public_url) + 7 <= URL_LIMIT:
        body |= {"url": f"{public_url}/status", "url_title": "Status page"}
    return body


class PushoverNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token", "user", "url"})

    type: Literal["pushover"]
    token: SecretStr  # the application's API token
    user: SecretStr  # the user or group key
    url: str = API_URL
    emergency: bool = False
    retry: Duration = Field(default=60.0, ge=30.0)  # Pushover's minimum is 30s
    expire: Duration = Field(default=3600.0, le=10800.0)  # and its maximum 3h

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not is_http_url(value):
            raise ValueError(f"expected an http:// or https:// URL like {API_URL}")
        return value

    def unconfigured(self) -> str:
        missing = [k for k in ("token", "user") if not getattr(self, k).get_secret_value()]
        return f"{' and '.join(missing)} empty" if missing else ""

    def secrets(self) -> list[str]:
        return [self.token.get_secret_value(), self.user.get_secret_value(), *url_secrets(self.url)]


class PushoverNotifier(Notifier[PushoverNotifierConfig]):
    config_model = PushoverNotifierConfig

    def __init__(
        self, config: PushoverNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        self.description = "pushover"

    async def send(self, notification: Notification) -> None:
        config = self.config
        emergency = (int(config.retry), int(config.expire)) if config.emergency else None
        body = build_message(
            notification,
            config.token.get_secret_value(),
            config.user.get_secret_value(),
            self.public_url,
            emergency,
        )
        error = await post_json(
            self.session,
            config.url,
            body,
            timeout=config.timeout,
            connect_timeout=self.connect_timeout,
            redact=self.redact,
        )
        if error is not None:
            raise error
