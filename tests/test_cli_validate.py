"""`probe validate`: which file, one line per check, secrets redacted, exit 0 / 2."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.cli_helpers import REPO, run_cli

WriteConfig = Any

VALID = """
agent: { version: 2.0.0 }
defaults: { interval: 30s, timeout: 3s }
checks:
  - name: database
    type: postgres
    dsn: postgresql://app:hunter2secret@db.internal:5432/app
    critical: true
  - name: external
    type: group
    interval: 1m
    timeout: 10s
    checks:
      - { name: paystack, type: http, url: "https://api.paystack.co/?token=tok3nvalue" }
      - { name: smtp, type: tcp, host: mail.internal, port: 25 }
  - { name: spare, type: redis, url: "redis://:redispass@cache:6379/0", enabled: false }
alerts:
  notifiers:
    - { type: slack, webhook_url: "https://hooks.slack.com/services/T000/B000/XXXXsecret" }
    - { type: alertmanager, urls: ["http://am:9093"], enabled: false }
"""


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_valid_config_prints_file_and_one_line_per_check(write_config: WriteConfig) -> None:
    path = write_config(VALID)
    out = run_cli("validate", "-c", str(path))
    assert out.code == 0, out
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0] == f"config: {path}"
    assert columns(lines[1]) == ["NAME", "TYPE", "INTERVAL", "TIMEOUT", "CRITICAL", "TARGET"]
    assert columns(lines[2]) == [
        "database",
        "postgres",
        "30s",
        "3s",
        "yes",
        "postgresql://app:***@db.internal:5432/app",
    ]
    assert columns(lines[3])[:5] == ["external", "group", "1m", "10s", "no"]
    # members are indented under their group and inherit its interval and timeout
    assert lines[4].startswith("  paystack")
    assert columns(lines[4])[:5] == ["paystack", "http", "1m", "10s", "no"]
    assert "api.paystack.co" in lines[4]
    assert lines[5].startswith("  smtp")
    assert "mail.internal:25" in lines[5]
    assert "spare" not in out.stdout  # disabled: validated, never run
    assert "notifier: slack on" in lines
    assert "notifier: alertmanager disabled" in lines
    assert lines[-1] == "valid: 2 checks (1 critical)"
    # every column starts at the same place on every row
    starts = {line.index(columns(line)[1]) for line in lines[1:6]}
    assert len(starts) == 1


def test_secrets_are_redacted(write_config: WriteConfig) -> None:
    out = run_cli("validate", "-c", str(write_config(VALID)))
    assert out.code == 0
    for secret in ("hunter2secret", "tok3nvalue", "redispass", "XXXXsecret"):
        assert secret not in out.stdout


def test_without_c_uses_probe_config_env(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config(VALID)
    out = run_cli("validate", cwd=tmp_path, env={"PROBE_CONFIG": str(path)})
    assert out.code == 0, out
    assert out.stdout.splitlines()[0] == f"config: {path}"


def test_c_beats_probe_config_env(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config(VALID)
    out = run_cli("validate", "-c", str(path), cwd=tmp_path, env={"PROBE_CONFIG": "/nope.yaml"})
    assert out.code == 0, out
    assert out.stdout.splitlines()[0] == f"config: {path}"


def test_without_c_uses_config_dir_in_working_directory(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "probe.yaml").write_text(VALID)
    out = run_cli("validate", cwd=tmp_path)
    assert out.code == 0, out
    assert out.stdout.splitlines()[0] == "config: config/probe.yaml"


def test_without_anything_uses_the_packaged_default(tmp_path: Path) -> None:
    out = run_cli("validate", cwd=tmp_path)
    assert out.code == 0, out
    assert out.stdout.splitlines()[0] == f"config: {REPO / 'probe' / 'default.yaml'}"
    names = [columns(line)[0] for line in out.stdout.splitlines()[2:] if line.startswith(" ")]
    assert names[:1] == ["paystack"]
    for name in ("database", "redis", "external_services", "app", "queues", "system"):
        assert re.search(rf"^{name}\s", out.stdout, re.MULTILINE), name


def test_invalid_config_prints_every_problem_and_exits_2(write_config: WriteConfig) -> None:
    text = """
checks:
  - { name: database, type: postgres, dsn: "postgresql://x@h/db", timeout: fast }
  - { name: Bad Name, type: redis, url: "redis://h" }
"""
    path = write_config(text)
    out = run_cli("validate", "-c", str(path))
    assert out.code == 2
    assert out.stdout == ""
    problems = out.stderr.splitlines()
    assert (
        f"{path}: checks[0].timeout: expected a duration like 5s or 500ms, got 'fast'" in problems
    )
    assert f"{path}: checks[1].name: must match [a-z0-9_-]+, got 'Bad Name'" in problems
    assert len(problems) == 2
