"""Email over SMTP (aiosmtplib): STARTTLS, implicit TLS or none, with AUTH when given.

One message per notification (a grouped notification is one message), with a plain-text
and an HTML part. Threading: every alert has a thread id derived from its key and the
time it fired (`<...alert@domain>`), so no state is needed to find it again. A message
that fires exactly one alert uses that id as its own `Message-ID`; every message lists
the thread ids of its alerts in `References`, and a resolve, reminder or escalation
answers (`In-Reply-To`) the message that fired its alert: the one this agent sent when
it remembers it, else the alert's thread id. Mail clients thread on these headers.
`build_message` is pure; `send` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import ssl
import time
from collections import OrderedDict
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import ClassVar, Literal

import aiohttp
import aiosmtplib
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from probe.contract import notification as words
from probe.contract.notification import Alert, Kind, Notification
from probe.contract.plugin import DeliveryError, Notifier, NotifierConfig
from probe.core.networds import address, causes, network_words
from probe.core.redact import Redactor
from probe.core.units import format_duration

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
COLOURS = {"CRITICAL": "#E01E5A", "WARNING": "#ECB22E", "RESOLVED": "#2EB67D", "TEST": "#1D9BD1"}
REMEMBERED_THREADS = 1000  # firing Message-IDs kept for replies; older ones use thread ids


async def _closed(protocol: object, wait: float = 1.0) -> None:
    """Until the connection is really gone: a TLS close is a short exchange of its own,
    and a loop that ends first (`probe alert-test`) would leave the socket behind."""
    deadline = time.monotonic() + wait
    while getattr(protocol, "transport", None) is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip("> ") or "probe.invalid"


def thread_id(agent: str, alert: Alert, domain: str) -> str:
    """The id of an alert's thread: the same for its firing and every later message."""
    key = f"{agent}/{alert.check}/{alert.component}/{alert.measure}/{alert.fired_at or alert.at}"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.alert@{domain}>"


def _html(notification: Notification, status_url: str) -> str:
    rows = []
    for alert in words.shown(notification):
        word = words.status_word(alert)
        rows.append(
            f'<tr><td style="border-left:6px solid {COLOURS[word]};padding:6px 10px">'
            f"<b>{word}</b> <code>{html.escape(alert.key)}</code><br>"
            f"{html.escape(alert.summary)}<br>"
            f'<span style="color:#666">{html.escape(words.event_words(alert))}</span></td></tr>'
        )
    link = f'<p><a href="{html.escape(status_url)}">Status page</a></p>' if status_url else ""
    return (
        "<!DOCTYPE html><html><body>"
        f"<h3>{html.escape(words.headline(notification))}</h3>"
        f'<table cellspacing="0" cellpadding="0">{"".join(rows)}</table>{link}'
        "</body></html>"
    )


def build_message(
    notification: Notification,
    sender: str,
    to: list[str],
    public_url: str = "",
    replying_to: dict[str, str] | None = None,
) -> EmailMessage:
    """The message for one notification; `replying_to` maps thread ids to the Message-ID
    of the message that fired them, when known. Pure."""
    agent = notification.agent
    domain = _domain(sender)
    status_url = f"{public_url}/status" if public_url else ""
    threads = [thread_id(agent, a, domain) for a in notification.alerts if a.kind is not Kind.TEST]
    fired = [a for a in notification.alerts if a.kind is Kind.FIRING and not a.previous_summary]
    message = EmailMessage()
    message["Subject"] = words.headline(notification)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(notification.created, usegmt=True)
    if len(fired) == 1 and len(notification.alerts) == 1:
        message["Message-ID"] = threads[0]
    else:
        message["Message-ID"] = make_msgid(domain=domain)
    known = replying_to or {}
    parents = [
        known.get(t, t)
        for a, t in zip(notification.alerts, threads, strict=False)
        if a.kind is not Kind.FIRING or a.previous_summary
    ]
    parents = [p for p in dict.fromkeys(parents) if p != message["Message-ID"]]
    if parents:
        message["In-Reply-To"] = parents[0]
    references = list(dict.fromkeys([*parents, *threads]))
    references = [r for r in references if r != message["Message-ID"]]
    if references:
        message["References"] = " ".join(references)
    text = words.plain_text(notification) + (f"\n\nStatus page: {status_url}" if status_url else "")
    message.set_content(text)
    message.add_alternative(_html(notification, status_url), subtype="html")
    return message


class EmailNotifierConfig(NotifierConfig):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})

    type: Literal["email"]
    host: str
    port: int = Field(default=0, ge=0, le=65535)  # 0: 587, 465 or 25 by `security`
    security: Literal["starttls", "tls", "none"] = "starttls"
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    username: str = ""
    password: SecretStr = SecretStr("")
    # A CA bundle for a server whose certificate no public CA signed (an internal relay).
    ca_file: str = ""
    verify_tls: bool = True

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value or any(c in value for c in "\r\n"):
            raise ValueError(f"expected an email address like probe@example.com, got {value!r}")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "@" not in entry or any(c in entry for c in "\r\n,"):
                raise ValueError(f"expected email addresses like oncall@example.com, got {entry!r}")
        return value

    @model_validator(mode="after")
    def _auth_pair(self) -> EmailNotifierConfig:
        if bool(self.username) != bool(self.password.get_secret_value()):
            raise ValueError("set both username and password, or neither")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    def secrets(self) -> list[str]:
        password = self.password.get_secret_value()
        return [password] if password else []


class EmailNotifier(Notifier[EmailNotifierConfig]):
    config_model = EmailNotifierConfig

    def __init__(
        self, config: EmailNotifierConfig, session: aiohttp.ClientSession, redactor: Redactor
    ) -> None:
        super().__init__(config, session, redactor)
        self.description = f"email {config.host}:{config.smtp_port} ({config.security})"
        self._fired: OrderedDict[str, str] = OrderedDict()  # thread id -> firing Message-ID

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.security == "none":
            return None
        context = ssl.create_default_context(cafile=self.config.ca_file or None)
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def send(self, notification: Notification) -> None:
        config = self.config
        message = build_message(
            notification, config.sender, config.to, self.public_url, dict(self._fired)
        )
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.smtp_port,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            tls_context=self._tls_context(),
            timeout=config.timeout,
        )
        protocol = None
        try:
            await client.connect()
            # Kept before anything can fail: a failed login closes the client, and the
            # TLS close that follows is an exchange of its own to wait for.
            protocol = client.protocol
            if config.username:
                await client.login(config.username, config.password.get_secret_value())
            await client.send_message(message)
            with contextlib.suppress(aiosmtplib.SMTPException):
                await client.quit()
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise self._error(exc) from None
        finally:
            client.close()
            await _closed(protocol)
        self._remember(notification, message["Message-ID"])

    def _remember(self, notification: Notification, message_id: str) -> None:
        domain = _domain(self.config.sender)
        for alert in notification.alerts:
            if alert.kind is Kind.FIRING:
                self._fired[thread_id(notification.agent, alert, domain)] = message_id
        while len(self._fired) > REMEMBERED_THREADS:
            self._fired.popitem(last=False)

    def _error(self, exc: BaseException) -> DeliveryError:
        where = f"SMTP {self.config.host}:{self.config.smtp_port}"
        retryable = True
        # aiosmtplib wraps a failed handshake in its connect error.
        untrusted = next(
            (c for c in causes(exc) if isinstance(c, ssl.SSLCertVerificationError)), None
        )
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            words, retryable = f"authentication failed ({exc.code})", False
        elif isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            refused = ", ".join(f"{r.recipient} ({r.code})" for r in exc.recipients)
            words = f"recipients refused: {refused}"
            retryable = any(r.code < 500 for r in exc.recipients)
        elif isinstance(exc, aiosmtplib.SMTPResponseException):
            words = f"the server answered {exc.code}: {exc.message[:200]}"
            retryable = exc.code < 500
        elif isinstance(untrusted, ssl.SSLCertVerificationError):
            words, retryable = f"TLS certificate not trusted ({untrusted.verify_message})", False
        elif isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            words = f"timed out after {format_duration(self.config.timeout)}"
        elif isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            words = "connection closed by server"
        elif isinstance(exc, OSError):  # aiosmtplib's connect errors are OSErrors too
            host, port = self.config.host, self.config.smtp_port
            words = network_words(exc, host, address(host, port)) or "cannot connect"
        elif isinstance(exc, aiosmtplib.SMTPException):
            # No STARTTLS, no AUTH offered: the server's setup, not bad luck.
            words, retryable = str(exc)[:200] or "the server refused", False
        else:
            words = str(exc)[:200] or "connection failed"
        return DeliveryError(self.redact(f"{where}: {words}"), retryable)
