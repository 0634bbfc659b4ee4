"""Apprise: the long tail of services (100+) behind one URL scheme each (`tgram://`,
`mailto://`, `json://`, ...), from the optional extra `pip install 'probe[apprise]'`.

Apprise's `notify` blocks (it uses requests), so it runs in a worker thread, never on the
event loop. Every URL is a secret: the whole URL and its parts that look like
credentials (user, password, tokens in the host or path) are redacted everywhere. It
says only whether every URL took the message, so a failure is retried whole; its own
log lines (which name the service) say which one failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, SecretStr, field_validator

from probe.contract.notification import Notification, alert_line, headline, shown, status_word
from probe.contract.plugin import DeliveryError, Notifier, NotifierConfig
from probe.core.redact import Redactor, url_secrets

EXTRA = "pip install 'probe[apprise]'"
NOTIFY_TYPES = {"CRITICAL": "failure", "WARNING": "warning", "RESOLVED": "success", "TEST": "info"}
_RANK = ("info", "success", "warning", "failure")
TOKEN_MIN_LENGTH = 12  # path parts this long are tokens more often than words


@contextmanager
def _apprise_quiet() -> Iterator[None]:
    """Apprise logs a URL it cannot parse, secret and all: not while validating."""
    logger = logging.getLogger("apprise")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def _load() -> Any:
    try:
        import apprise
    except ImportError:
        return None
    return apprise


def build_message(notification: Notification, public_url: str = "") -> tuple[str, str, str]:
    """(title, body, notify type) for one notification; pure."""
    readable = shown(notification)
    types = [NOTIFY_TYPES[status_word(a)] for a in readable] or ["info"]
    body = "\n".join(alert_line(a) for a in readable)
    if public_url:
        body += f"\n\nStatus page: {public_url}/status"
    return headline(notification), body, max(types, key=_RANK.index)


def _url_parts(url: str) -> list[str]:
    """The parts of an apprise URL that may be credentials: user, password, a host that
    is not a host name (`tgram://123:AAE.../chat`), and long path segments."""
    try:
        parts = urlsplit(url)
        found = [parts.username or "", parts.password or ""]
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return []
    if host and "." not in host:
        found.append(host)
    found += [p for p in parts.path.split("/") if len(p) >= TOKEN_MIN_LENGTH]
    return [p for p in found if p]


class AppriseNotifierConfig(NotifierConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"urls"})

    type: Literal["apprise"]
    urls: list[SecretStr] = Field(min_length=1)

    @field_validator("urls")
    @classmethod
    def _known_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        apprise = _load()
        if apprise is None:
            raise ValueError(f"the apprise notifier needs the apprise package: {EXTRA}")
        for index, url in enumerate(value):
            text = url.get_secret_value()
            with _apprise_quiet():
                plugin = apprise.Apprise.instantiate(text) if text else None
            if plugin is None:
                scheme = text.partition("://")[0] if "://" in text else ""
                what = f"scheme {scheme!r}" if scheme and scheme.isalnum() else "this URL"
                raise ValueError(f"urls[{index}]: apprise cannot use {what}")
        return value

    def secrets(self) -> list[str]:
        found: list[str] = []
        for url in self.urls:
            text = url.get_secret_value()
            found += [text, *url_secrets(text), *_url_parts(text)]
        return found


class AppriseNotifier(Notifier[AppriseNotifierConfig]):
    config_model = AppriseNotifierConfig

    def __init__(
        self, config: AppriseNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        schemes = sorted({u.get_secret_value().partition("://")[0] for u in config.urls})
        self.description = f"apprise {', '.join(schemes)}"
        apprise = _load()
        self._apprise = apprise.Apprise()
        for url in config.urls:
            self._apprise.add(url.get_secret_value())

    def _notify(self, title: str, body: str, notify_type: str) -> bool:
        return bool(self._apprise.notify(body=body, title=title, notify_type=notify_type))

    async def send(self, notification: Notification) -> None:
        title, body, notify_type = build_message(notification, self.public_url)
        # A thread: apprise's requests would block every check and the other notifiers.
        # A timeout stops the waiting, not the thread, which ends with its own timeouts.
        delivered = await asyncio.to_thread(self._notify, title, body, notify_type)
        if not delivered:
            raise DeliveryError(
                f"{self.description}: not every URL took the notification (apprise logs which)"
            )
