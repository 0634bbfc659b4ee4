"""The alert record's decisions, and the fleet and heartbeat config keys: errors in one
line that never echo the secret, and secrets kept out of what is printed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from probe.contract.config import ConfigError, load_config
from probe.contract.notification import Alert, Kind, Severity
from probe.engine.fleet.record import Entry, apply, decide
from tests.cli_helpers import run_cli

T0 = 1_800_000_000.0


def alert(kind: Kind, severity: Severity = Severity.CRITICAL, since: float = T0) -> Alert:
    return Alert(
        check="cache", component="", severity=severity, kind=kind,
        summary="connection refused (127.0.0.1:6379)", since=since, at=since + 60,
        fired_at=since + 60, measure="up",
    )  # fmt: skip


def test_a_firing_is_sent_once_and_its_resolve_once() -> None:
    fired = decide(None, alert(Kind.FIRING), repeat=3600, now=T0 + 60)
    assert fired is not None and fired.kind is Kind.FIRING
    entry = apply(None, fired, T0 + 60)
    assert decide(entry, alert(Kind.FIRING), 3600, T0 + 61) is None  # another engine's
    resolve = dataclasses.replace(alert(Kind.RESOLVED), at=T0 + 120)
    sent = decide(entry, resolve, 3600, T0 + 120)
    assert sent is resolve
    closed = apply(entry, sent, T0 + 120)
    assert closed.resolved_at == T0 + 120
    assert decide(closed, resolve, 3600, T0 + 121) is None  # a lagging engine's resolve
    assert decide(closed, alert(Kind.FIRING), 3600, T0 + 121) is None  # same episode, late
    again = decide(closed, alert(Kind.FIRING, since=T0 + 300), 3600, T0 + 400)
    assert again is not None and again.kind is Kind.FIRING  # a new episode is news


def test_a_resolve_nobody_fired_is_not_sent() -> None:
    assert decide(None, alert(Kind.RESOLVED), 3600, T0) is None


def test_escalation_and_reminders_follow_the_record_not_the_engine() -> None:
    warned = apply(None, alert(Kind.FIRING, Severity.WARNING), T0 + 60)
    up = decide(warned, alert(Kind.FIRING, Severity.CRITICAL), 3600, T0 + 90)
    assert up is not None and up.kind is Kind.ESCALATED
    assert up.previous_severity is Severity.WARNING
    fired = apply(None, alert(Kind.FIRING), T0 + 60)
    assert decide(fired, alert(Kind.REMINDER), 3600, T0 + 600) is None  # too soon
    late = decide(fired, alert(Kind.REMINDER), 3600, T0 + 60 + 3600)
    assert late is not None and late.kind is Kind.REMINDER
    never = decide(None, alert(Kind.REMINDER), 3600, T0 + 60)  # the old leader never said
    assert never is not None and never.kind is Kind.FIRING


def test_an_entry_survives_its_json() -> None:
    entry = apply(None, alert(Kind.FIRING), T0)
    assert Entry.from_json(entry.to_json()) == entry


CONFIG = """
agent:
  fleet: {{name: shop, backend: "{backend}", lease: {lease}}}
  heartbeat: {{url: "{url}", every: 1m, timeout: {timeout}}}
checks: [{{name: t, type: tcp, host: 127.0.0.1, port: 9}}]
"""


def problems(tmp_path: Path, **fields: str) -> list[str]:
    values = {"backend": "redis://127.0.0.1:6379/0", "lease": "15s",
              "url": "https://hc-ping.com/x", "timeout": "10s", **fields}  # fmt: skip
    path = tmp_path / "probe.yaml"
    path.write_text(CONFIG.format(**values))
    try:
        load_config(path)
    except ConfigError as exc:
        return [p.split(": ", 1)[1] for p in exc.problems]
    return []


def test_fleet_and_heartbeat_errors_name_the_key_and_never_the_password(tmp_path: Path) -> None:
    assert problems(tmp_path) == []
    assert problems(tmp_path, backend="mysql://app:hunter2@db/shop") == [
        "agent.fleet.backend: expected a postgresql:// DSN or a redis:// URL (scheme 'mysql')"
    ]
    assert problems(tmp_path, lease="500ms") == [
        "agent.fleet.lease: must be between 1s and 300s, got 0.5s"
    ]
    assert problems(tmp_path, url="ftp://hc-ping.com/x") == [
        "agent.heartbeat.url: expected an http:// or https:// URL"
    ]
    assert problems(tmp_path, timeout="1m") == [
        "agent.heartbeat: timeout (60s) must be shorter than every (60s)"
    ]


def test_validate_never_prints_the_backend_password_or_the_ping_key(tmp_path: Path) -> None:
    key = "0f4c2b8e-9d1a-4f7e-b3c5-a6d8e2f10b47"
    path = tmp_path / "probe.yaml"
    url = f"https://hc-ping.com/{key}"
    dsn = "postgresql://app:s3cr3t-pw@db/shop"
    path.write_text(CONFIG.format(backend=dsn, lease="15s", url=url, timeout="10s"))
    done = run_cli("validate", "-c", str(path))
    assert done.code == 0, done.stderr
    shown = done.stdout + done.stderr
    assert "s3cr3t-pw" not in shown and key not in shown
    config = load_config(path)
    assert {"s3cr3t-pw", key} <= set(config.secrets())
