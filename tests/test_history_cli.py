"""`probe history` on a SQLite file written by the real writer (no agent running), and
the config keys `agent.history` and `agent.status_page`."""

from __future__ import annotations

import time
from pathlib import Path

from probe.contract.notification import Kind, Severity
from probe.core.model import Status
from tests.cli_helpers import run_cli
from tests.history_helpers import alert, feed, sqlite_writer
from tests.support import HandClock

P, F = Status.PASS, Status.FAIL


def config(tmp_path: Path, history: str, extra: str = "") -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(
        f"agent: {{ history: '{history}' {extra} }}\n"
        "checks:\n"
        "  - { name: api, type: tcp, host: 127.0.0.1, port: 1 }\n"
        "  - { name: db, type: tcp, host: 127.0.0.1, port: 1 }\n"
    )
    return path


async def seed(path: Path) -> None:
    clock = HandClock(time.time())
    writer = sqlite_writer(path, clock, ["api", "db"])
    feed(writer, "api", clock.now - 1800, [P] * 9 + [F])  # 90% in the last hour
    feed(writer, "db", clock.now - 3 * 86400, [P] * 4)
    since = clock.now - 1200
    writer.record_alert(alert(Kind.FIRING, "api", since, since + 60, Severity.CRITICAL))
    writer.record_alert(alert(Kind.RESOLVED, "api", since, since + 300, Severity.CRITICAL))
    await writer.flush()
    await writer.stop()


async def test_history_prints_uptime_and_incidents_without_the_agent(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    await seed(db)
    out = run_cli("history", "-c", str(config(tmp_path, f"sqlite://{db}")))
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"history from sqlite://{db}, as of ")
    header, api, dbrow = lines[1].split(), lines[2].split(), lines[3].split()
    assert header == ["check", "24h", "7d", "30d", "90d", "runs", "7d", "fail", "p50", "p95"]
    assert api[:5] == ["api", "90.00%", "90.00%", "90.00%", "90.00%"]
    assert api[5:7] == ["10", "1"] and api[7].endswith("ms")
    assert dbrow[:3] == ["db", "-", "100%"]  # nothing in the last 24 h: no figure, not 0%
    assert "incidents in the last 7d: 1" in out.stdout
    assert "critical  api up: api down: connection refused  (lasted 5m)" in out.stdout


async def test_history_for_one_check_and_window(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    await seed(db)
    out = run_cli(
        "history", "-c", str(config(tmp_path, f"sqlite://{db}")), "--check", "db", "--window", "24h"
    )
    assert out.code == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()[1:3]] == ["check", "db"]
    assert "incidents in the last 24h: none" in out.stdout


def test_history_says_plainly_when_there_is_nothing_to_show(tmp_path: Path) -> None:
    missing = run_cli("history", "-c", str(config(tmp_path, f"sqlite://{tmp_path}/none.db")))
    assert missing.code == 1
    assert missing.stderr.strip() == (
        f"no history yet: {tmp_path}/none.db does not exist (has the agent run?)"
    )
    assert not (tmp_path / "none.db").exists()  # reading never creates the store
    off = run_cli("history", "-c", str(config(tmp_path, "off")))
    assert off.code == 2 and "agent.history is off" in off.stderr
    bad = run_cli("history", "-c", str(config(tmp_path, "off")), "--window", "2y")
    assert bad.code == 2 and "--window" in bad.stderr and "Traceback" not in bad.stderr


async def test_unknown_check_and_an_unreadable_file_are_one_line(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    await seed(db)
    unknown = run_cli("history", "-c", str(config(tmp_path, f"sqlite://{db}")), "--check", "x")
    assert unknown.code == 1 and unknown.stderr.strip().endswith("no history for check 'x' in "
                                                                  f"sqlite://{db}")  # fmt: skip
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    broken = run_cli("history", "-c", str(config(tmp_path, f"sqlite://{junk}")))
    assert broken.code == 2 and len(broken.stderr.strip().splitlines()) == 1
    assert broken.stderr.startswith(f"cannot read history from sqlite://{junk}: ")
    assert junk.read_bytes().startswith(b"not a database")  # left where it was


def test_config_errors_name_the_key_and_never_quote_a_dsn(tmp_path: Path) -> None:
    wrong = run_cli("validate", "-c", str(config(tmp_path, "mysql://app:S3cr3t-pw@db/x")))
    assert wrong.code == 2
    assert "agent.history" in wrong.stderr and "S3cr3t-pw" not in wrong.stderr
    token = run_cli("validate", "-c", str(config(tmp_path, "off", ", status_page: token")))
    assert token.code == 2 and "status_page: token needs agent.auth_token" in token.stderr
    fine = run_cli(
        "validate",
        "-c",
        str(config(tmp_path, "postgresql://app:S3cr3t-pw@db/x", ", status_page: off")),
    )
    assert fine.code == 0, fine.stderr
    assert "S3cr3t-pw" not in fine.stdout + fine.stderr
