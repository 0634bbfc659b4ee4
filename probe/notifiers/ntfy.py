"""ntfy: a JSON publish (`POST` to the server root with `topic` in the body).

`url` is the server and topic (`https://ntfy.sh/probe-alerts`). On a public server the
topic is as good as a password, so the whole URL is a secret. Priority from severity:
a critical is 5 (max: a long vibration and a pop-over), a warning 4 (high), resolves
and tests 3 (default). `token` is an access token (`Authorization: Bearer`).
`build_message` is pure; `send` only does the I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from pydantic import SecretStr, field_validator

from probe.contract.notification import Notification, alert_line, headline, shown, status_word
from probe.contract.plugin import Notifier, NotifierConfig
from probe.core.fields import is_http_url
from probe.core.redact import Redactor, url_secrets
from probe.notifiers.errors import connect_timeout
from probe.notifiers.posting import post_json

PRIORITIES = {"CRITICAL": 5, "WARNING": 4, "RESOLVED": 3, "TEST": 3}
TAGS = {
    "CRITICAL": "rotating_light",
    "WARNING": "warning",
    "RESOLVED": "white_check_mark",
    "TEST": "bell",
}
# ntfy's default message-size-limit is 4,096 bytes; a longer one is refused or attached.
MESSAGE_BYTES = 4000
TITLE_LIMIT = 250


def split_topic(url: str) -> tuple[str, str]:
    """`https://ntfy.sh/probe-alerts` -> (`https://ntfy.sh/`, `probe-alerts`)."""
    parts = urlsplit(url)
    base, _, topic = parts.path.rstrip("/").rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, base + "/", "", "")), topic


def _fit(text: str) -> str:
    data = text.encode()
    if len(data) <= MESSAGE_BYTES:
        return text
    return data[: MESSAGE_BYTES - 4].decode(errors="ignore") + " ..."


def build_message(notification: Notification, topic: str, public_url: str = "") -> dict[str, Any]:
    """The JSON publish body; pure."""
    readable = shown(notification)
    words = [status_word(a) for a in readable] or ["TEST"]
    worst = max(words, key=PRIORITIES.__getitem__)
    body: dict[str, Any] = {
        "topic": topic,
        "title": headline(notification)[:TITLE_LIMIT],
        "message": _fit("\n".join(alert_line(a) for a in readable)),
        "priority": PRIORITIES[worst],
        "tags": [TAGS[worst]],
    }
    if public_url:
        body["click"] = f"{public_url}/status"
    return body


class NtfyNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url", "token"})

    type: Literal["ntfy"]
    url: SecretStr
    token: SecretStr = SecretStr("")

    @field_validator("url")
    @classmethod
    def _server_and_topic(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and (not is_http_url(url) or not split_topic(url)[1]):
            raise ValueError("expected the server and topic, like https://ntfy.sh/my-alerts")
        return value

    def unconfigured(self) -> str:
        return "" if self.url.get_secret_value() else "url is empty"

    def secrets(self) -> list[str]:
        url = self.url.get_secret_value()
        topic = split_topic(url)[1] if url else ""
        found = [url, topic, self.token.get_secret_value(), *url_secrets(url)]
        return [s for s in found if s]


class NtfyNotifier(Notifier[NtfyNotifierConfig]):
    config_model = NtfyNotifierConfig

    def __init__(
        self, config: NtfyNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.connect_timeout = connect_timeout(session, config.timeout)
        self.server, self.topic = split_topic(config.url.get_secret_value())
        self.description = f"ntfy {urlsplit(self.server).hostname or ''}".rstrip()

    async def send(self, notification: Notification) -> None:
        token = self.config.token.get_secret_value()
        error = await post_json(
            self.session,
            self.server,
            build_message(notification, self.topic, self.public_url),
            timeout=self.config.timeout,
            connect_timeout=self.connect_timeout,
            redact=self.redact,
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )
        if error is not None:
            raise error
