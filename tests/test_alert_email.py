"""The email notifier against a real SMTP server (aiosmtpd) with STARTTLS, implicit TLS or
none, AUTH, and a throw-away certificate authority (trustme): the messages as delivered,
their two parts and the headers that thread a resolve under its firing."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from probe.core.model import Status
from probe.engine.alerts.alert_test import send_test
from probe.engine.alerts.delivery import Backoff
from probe.engine.alerts.service import AlertService
from tests.alert_helpers import T0, make_config, obs, result
from tests.conftest import free_port

USER = "probe@example.com"
PASSWORD = "smtpCanaryPassw0rd"
FAILURE = "HTTP 503 <b>Service & Unavailable</b>"
FAST = Backoff(initial=0.05, maximum=0.2)


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str], bool, bool]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.envelopes.append(
            (envelope.mail_from, list(envelope.rcpt_tos), tls, bool(session.authenticated))
        )
        return "250 Message accepted for delivery"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd answers 535 itself (True would mean we already had).
    return AuthResult(success=ok, handled=False)


@dataclass
class Smtp:
    port: int
    mailbox: Mailbox
    ca_file: str


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, str(path)


def _server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(params=["starttls", "tls", "none"])
def smtp(request: pytest.FixtureRequest, ca: tuple[trustme.CA, str]) -> Iterator[Smtp]:
    """A real SMTP server with AUTH, speaking the security of the parameter."""
    authority, ca_file = ca
    mailbox = Mailbox()
    port = free_port()
    options: dict[str, Any] = {"authenticator": _authenticator}
    if request.param == "starttls":
        options |= {
            "tls_context": _server_context(authority),
            "require_starttls": True,
            "auth_required": True,
        }
    else:
        # aiosmtpd counts only STARTTLS as TLS for AUTH (and warns when AUTH is required
        # without it): AUTH is offered and checked, the test asserts that it was used.
        options |= {"auth_require_tls": False}
        if request.param == "tls":
            options["ssl_context"] = _server_context(authority)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield Smtp(port, mailbox, ca_file)
    finally:
        controller.stop()


def email_notifier(smtp: Smtp, security: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "security": security,
        "from": USER,
        "to": ["oncall@example.com", "cto@example.com"],
        "username": USER,
        "password": PASSWORD,
        "ca_file": smtp.ca_file,
        **extra,
    }


def _security(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["smtp"])


def _parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


async def test_a_resolve_threads_under_its_firing(
    smtp: Smtp, request: pytest.FixtureRequest
) -> None:
    security = _security(request)
    now = [T0]
    config = make_config(
        alerts={"for": {"fail": "1m"}, "group_wait": "0s",
                "notifiers": [email_notifier(smtp, security)]},
        agent={"public_url": "https://probe.example.com"},
    )  # fmt: skip
    service = AlertService(config, clock=lambda: now[0], backoff=FAST)
    await service.start()
    try:
        for _ in range(5):
            service.observe("database", result(Status.FAIL, output=FAILURE))
            now[0] += 15
        await _database_recovers(service, now, smtp)
    finally:
        await service.stop()

    firing, resolved = smtp.mailbox.messages
    assert firing["Subject"] == "botflow-probe: 1 critical"
    assert resolved["Subject"] == "botflow-probe: 1 resolved"
    assert firing["From"] == USER and firing["To"] == "oncall@example.com, cto@example.com"
    assert firing["Message-ID"].endswith(".alert@example.com>")
    assert resolved["In-Reply-To"] == firing["Message-ID"]
    assert firing["Message-ID"] in resolved["References"].split()
    parts = _parts(firing)
    assert set(parts) == {"text/plain", "text/html"}
    assert f"CRITICAL database: {FAILURE}" in parts["text/plain"]
    assert "HTTP 503 &lt;b&gt;Service &amp; Unavailable&lt;/b&gt;" in parts["text/html"]
    assert 'href="https://probe.example.com/status"' in parts["text/html"]
    assert "RESOLVED database" in _parts(resolved)["text/plain"]
    mail_from, rcpt, tls, authenticated = smtp.mailbox.envelopes[0]
    assert (mail_from, rcpt) == (USER, ["oncall@example.com", "cto@example.com"])
    assert tls == (security != "none") and authenticated


async def _database_recovers(service: AlertService, now: list[float], smtp: Smtp) -> None:
    """After the firing mail: the database passes twice, and its resolve is mailed."""
    await _wait(lambda: len(smtp.mailbox.messages) >= 1)
    for _ in range(2):
        service.observe("database", result(Status.PASS, obs("", "response_time", 0.002)))
        now[0] += 15
    await _wait(lambda: len(smtp.mailbox.messages) >= 2)


async def _wait(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("smtp", ["starttls"], indirect=True)
async def test_a_grouped_notification_is_one_message_and_resolves_reply_to_it(
    smtp: Smtp,
) -> None:
    now = [T0]
    config = make_config(
        alerts={"for": {"fail": "1m"}, "group_wait": "5s",
                "notifiers": [email_notifier(smtp, "starttls")]},
    )  # fmt: skip
    service = AlertService(config, clock=lambda: now[0], backoff=FAST, tick_interval=0.05)
    await service.start()
    try:
        for _ in range(5):
            service.observe("database", result(Status.FAIL, output="connection refused"))
            service.observe("redis", result(Status.FAIL, output="timed out after 2s"))
            now[0] += 15
        await _database_recovers(service, now, smtp)
    finally:
        await service.stop()
    grouped, resolved = smtp.mailbox.messages
    assert grouped["Subject"] == "botflow-probe: 2 critical"
    plain = _parts(grouped)["text/plain"]
    assert "CRITICAL database: connection refused" in plain
    assert "CRITICAL redis: timed out after 2s" in plain
    # Both alerts' threads hang off the one message; the resolve answers it.
    assert len(grouped["References"].split()) == 2
    assert resolved["In-Reply-To"] == grouped["Message-ID"]
    assert grouped["Message-ID"] in resolved["References"].split()


async def test_alert_test_is_delivered(smtp: Smtp, request: pytest.FixtureRequest) -> None:
    security = _security(request)
    reports = await send_test(make_config(alerts={"notifiers": [email_notifier(smtp, security)]}))
    assert reports == [(f"email 127.0.0.1:{smtp.port} ({security})", True, "")]
    (message,) = smtp.mailbox.messages
    assert message["Subject"] == "botflow-probe: 1 test"


@pytest.mark.parametrize("smtp", ["starttls"], indirect=True)
async def test_a_wrong_password_is_one_clear_line_without_the_password(smtp: Smtp) -> None:
    notifier = email_notifier(smtp, "starttls", password="wrong-" + PASSWORD)
    ((where, delivered, detail),) = await send_test(make_config(alerts={"notifiers": [notifier]}))
    assert not delivered
    assert detail == f"SMTP 127.0.0.1:{smtp.port}: authentication failed (535)"
    assert PASSWORD not in where + detail


@pytest.mark.parametrize("smtp", ["tls"], indirect=True)
async def test_a_certificate_no_trusted_ca_signed_is_refused(smtp: Smtp) -> None:
    notifier = email_notifier(smtp, "tls", ca_file="")
    ((_, delivered, detail),) = await send_test(make_config(alerts={"notifiers": [notifier]}))
    assert not delivered
    assert detail.startswith(f"SMTP 127.0.0.1:{smtp.port}: TLS certificate not trusted")
    assert smtp.mailbox.messages == []


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(
        "checks: []\nalerts:\n  notifiers:\n"
        f"    - {{type: email, host: smtp.example.com, to: [nobody], username: u,"
        f" password: {PASSWORD}, security: ssl}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "probe", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert f"{path}: alerts.notifiers[0].from: required key is missing" in done.stderr
    assert "alerts.notifiers[0].to: expected email addresses like" in done.stderr
    assert "alerts.notifiers[0].security:" in done.stderr
    assert PASSWORD not in done.stderr and "Traceback" not in done.stderr
