"""Helpers shared by the history tests: results at chosen moments, a fake clock, configs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from probe.contract.config import Config, load_config
from probe.contract.notification import Alert, Kind, Severity
from probe.core.model import CheckResult, Status
from probe.core.times import Clock
from probe.engine.history.sqlite import SqliteBackend
from probe.engine.history.writer import HistoryWriter

# A fixed "now": 2026-11-30 12:30 UTC.
DAY0 = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp())
NOW = DAY0 + 12 * 3600 + 30 * 60


def result(status: Status, at: float, response_time: float = 0.01) -> CheckResult:
    return CheckResult(status, response_time, "" if status is Status.PASS else "down", at)


def feed(
    writer: HistoryWriter,
    check: str,
    start: float,
    statuses: list[Status],
    interval: float = 60.0,
    response_time: float = 0.01,
) -> None:
    for index, status in enumerate(statuses):
        writer.observe(check, result(status, start + index * interval, response_time), interval)


def alert(kind: Kind, check: str, since: float, at: float, severity: Severity) -> Alert:
    return Alert(
        check=check,
        component="",
        severity=severity,
        kind=kind,
        summary=f"{check} down: connection refused",
        since=since,
        at=at,
        fired_at=since,
        measure="up",
    )


def sqlite_writer(path: Path, clock: Clock, checks: list[str]) -> HistoryWriter:
    return HistoryWriter(SqliteBackend(path), "probe", checks, clock=clock)


def config_for(tmp_path: Path, checks: list[str], agent: str = "") -> Config:
    lines = [f"agent: {{ listen: '127.0.0.1:0', history: off {agent} }}", "checks:"]
    lines += [f"  - {{ name: {c}, type: tcp, host: 127.0.0.1, port: 1 }}" for c in checks]
    path = tmp_path / "probe.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)
