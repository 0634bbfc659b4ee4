"""`probe check` against real PostgreSQL and Redis, healthy, slow and refused."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from probe.cli import oneshot, output
from probe.contract.config import load_config
from probe.core.redact import Redactor
from probe.engine.store import ResultStore
from tests.cli_helpers import arun_cli, cli_env, run_cli
from tests.conftest import free_port
from tests.faultproxy import FaultProxy, Mode

WriteConfig = Any


def two_checks(pg_dsn: str, redis_url: str, pg_warn: str = "", pg_timeout: str = "2s") -> str:
    return f"""
agent: {{ version: 4.5.6 }}
checks:
  - name: database
    type: postgres
    dsn: {pg_dsn}
    critical: true
    timeout: {pg_timeout}
    {pg_warn}
  - name: redis
    type: redis
    url: {redis_url}
    critical: true
    timeout: 2s
"""


def proxied_dsn(pg_dsn: str, proxy: FaultProxy) -> str:
    database = pg_dsn.rsplit("/", 1)[1]
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"


async def test_healthy_exits_0_and_prints_one_line_per_check(
    pg_dsn: str, redis_url: str, write_config: WriteConfig
) -> None:
    path = write_config(two_checks(pg_dsn, redis_url))
    out = await arun_cli("check", "-c", str(path))
    assert out.code == 0, out
    lines = out.stdout.splitlines()
    assert re.match(r"^PASS  database\s+\d+(ms|s)$", lines[0])
    assert re.match(r"^PASS  redis\s+\d+(ms|s)$", lines[1])
    assert lines[2].startswith("healthy: 2 checks, 2 pass, 0 warn, 0 fail in ")
    assert "\033[" not in out.stdout  # not a terminal: no colour
    assert out.stderr == ""


async def test_slow_database_warns_and_exits_1(
    pg_dsn: str, redis_url: str, pg_proxy: FaultProxy, write_config: WriteConfig
) -> None:
    pg_proxy.set(Mode.DELAY, delay=0.15)
    config = two_checks(
        proxied_dsn(pg_dsn, pg_proxy), redis_url, pg_warn="warn: { response_time: 50ms }"
    )
    out = await arun_cli("check", "-c", str(write_config(config)))
    assert out.code == 1, out
    database = out.stdout.splitlines()[0]
    assert database.startswith("WARN  database")
    assert "response_time" in database and "> 50ms" in database
    assert out.stdout.splitlines()[-1].startswith("degraded: 2 checks, 1 pass, 1 warn, 0 fail")


async def test_refused_critical_check_exits_2(
    pg_dsn: str, redis_url: str, pg_proxy: FaultProxy, write_config: WriteConfig
) -> None:
    pg_proxy.set(Mode.REFUSE)
    config = two_checks(proxied_dsn(pg_dsn, pg_proxy), redis_url)
    out = await arun_cli("check", "-c", str(write_config(config)))
    assert out.code == 2, out
    database = out.stdout.splitlines()[0]
    assert database.startswith("FAIL  database")
    assert "Traceback" not in out.stderr
    assert "(critical failing: database)" in out.stdout.splitlines()[-1]


async def test_refused_non_critical_check_is_degraded(
    pg_dsn: str, redis_url: str, pg_proxy: FaultProxy, write_config: WriteConfig
) -> None:
    pg_proxy.set(Mode.REFUSE)
    config = two_checks(proxied_dsn(pg_dsn, pg_proxy), redis_url).replace(
        "critical: true\n    timeout: 2s\n    \n", "critical: false\n    timeout: 2s\n", 1
    )
    assert "critical: false" in config
    out = await arun_cli("check", "-c", str(write_config(config)), "--format", "json")
    assert out.code == 1, out
    assert json.loads(out.stdout)["status"] == "degraded"


async def test_only_runs_the_named_checks(
    pg_dsn: str, redis_url: str, write_config: WriteConfig
) -> None:
    path = write_config(two_checks(pg_dsn, redis_url))
    out = await arun_cli("check", "-c", str(path), "--only", "redis", "--format", "json")
    assert out.code == 0, out
    body = json.loads(out.stdout)
    assert [c["name"] for c in body["checks"]] == ["redis"]


async def test_only_ignores_a_failing_check_it_did_not_name(
    pg_dsn: str, redis_url: str, pg_proxy: FaultProxy, write_config: WriteConfig
) -> None:
    pg_proxy.set(Mode.REFUSE)
    path = write_config(two_checks(proxied_dsn(pg_dsn, pg_proxy), redis_url))
    assert (await arun_cli("check", "-c", str(path), "--only", "redis")).code == 0
    assert (await arun_cli("check", "-c", str(path), "--only", "database")).code == 2


def test_unknown_only_name_is_a_usage_error_listing_names(write_config: WriteConfig) -> None:
    path = write_config(SYSTEM_AND_GROUP.replace("PORT", "9"))
    out = run_cli("check", "-c", str(path), "--only", "databse")
    assert out.code == 3
    assert out.stdout == ""
    assert "no check named 'databse' (known: host, external)" in out.stderr


def test_only_with_a_group_member_names_its_group(write_config: WriteConfig) -> None:
    out = run_cli(
        "check",
        "-c",
        str(write_config(SYSTEM_AND_GROUP.replace("PORT", "9"))),
        "--only",
        "local_port",
    )
    assert out.code == 3
    assert "'local_port' is a member of group 'external'" in out.stderr
    assert "--only external" in out.stderr


def test_unknown_only_name_in_nagios_format_prints_unknown(write_config: WriteConfig) -> None:
    path = write_config(SYSTEM_AND_GROUP.replace("PORT", "9"))
    out = run_cli("check", "-c", str(path), "--only", "nope", "--format", "nagios")
    assert out.code == 3
    assert out.stdout.startswith("PROBE UNKNOWN - usage error: ")


def test_usage_errors_exit_3(write_config: WriteConfig) -> None:
    path = str(write_config(SYSTEM_AND_GROUP.replace("PORT", "9")))
    for args in (
        ["--format", "xml"],
        ["--bogus"],
        ["--timeout", "fast"],
        ["--timeout", "0s"],
        ["stray"],
    ):
        out = run_cli("check", "-c", path, *args)
        assert out.code == 3, (args, out)
        assert out.stderr.startswith("usage: probe check"), args
        assert "Traceback" not in out.stderr


SYSTEM_AND_GROUP = """
agent: { version: 1.0.0 }
checks:
  - { name: host, type: system }
  - name: external
    type: group
    checks:
      - { name: local_port, type: tcp, host: 127.0.0.1, port: PORT }
  - { name: switched_off, type: tcp, host: 127.0.0.1, port: 1, enabled: false }
"""


def listening_socket() -> tuple[Any, int]:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def test_text_indents_group_members_and_skips_disabled(write_config: WriteConfig) -> None:
    sock, port = listening_socket()
    with sock:
        path = write_config(SYSTEM_AND_GROUP.replace("PORT", str(port)))
        out = run_cli("check", "-c", str(path))
    assert out.code == 0, out
    lines = out.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["PASS", "host"],
        ["PASS", "external"],
        ["PASS", "local_port"],
    ]
    assert lines[2].startswith("  PASS  local_port")
    # the response-time column (right-aligned) lines up across levels
    assert len({len(line) for line in lines[:3]}) == 1
    assert "switched_off" not in out.stdout
    assert lines[3].startswith("healthy: 2 checks, 2 pass")


def _run_on_terminal(path: Path, extra_env: dict[str, str]) -> str:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe", "check", "-c", str(path)],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=cli_env(extra_env),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closes when the child exits
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(30)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal_and_never_with_no_color(write_config: WriteConfig) -> None:
    path = write_config("checks: [{ name: host, type: system }]")
    assert "\033[32mPASS\033[0m" in _run_on_terminal(path, {})
    assert "\033[" not in _run_on_terminal(path, {"NO_COLOR": "1"})


async def test_overall_timeout_bounds_a_blackholed_check(
    pg_dsn: str, redis_url: str, pg_proxy: FaultProxy, write_config: WriteConfig
) -> None:
    pg_proxy.set(Mode.BLACKHOLE)
    config = two_checks(proxied_dsn(pg_dsn, pg_proxy), redis_url, pg_timeout="10s")
    config = config.replace("checks:", "defaults: { interval: 30s }\nchecks:")
    started = time.monotonic()
    out = await arun_cli("check", "-c", str(write_config(config)), "--timeout", "1s")
    assert time.monotonic() - started < 8  # generous: well under the check's own 10s
    assert out.code == 2, out
    assert "timed out after 1s (--timeout)" in out.stdout.splitlines()[0]
    assert out.stdout.splitlines()[1].startswith("PASS  redis")


async def test_json_is_the_health_body_the_server_serves(
    redis_url: str, write_config: WriteConfig
) -> None:
    # A closed port, so both runs fail with the same words.
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    path = write_config(two_checks(closed, redis_url))
    out = await arun_cli("check", "-c", str(path), "--format", "json")
    assert out.code == 2, out
    printed = json.loads(out.stdout)

    # The store renders /health from the same results; only the clock-bound fields differ.
    config = load_config(path)
    results = await oneshot.run_checks(config.checks, Redactor(config.secrets()))
    now = time.time()
    store = ResultStore(config, clock=lambda: now)
    for name, result in results.items():
        store.record(name, result)
    served = json.loads(store.health.body)
    assert store.health.status_code == 503

    assert list(printed) == list(served) == ["status", "timestamp", "version", "uptime", "checks"]
    assert printed["status"] == served["status"] == "unhealthy"
    assert printed["version"] == served["version"] == "4.5.6"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", printed["timestamp"])
    assert printed["uptime"] == 0
    for mine, theirs in zip(printed["checks"], served["checks"], strict=True):
        assert list(mine) == list(theirs)
        assert {k: v for k, v in mine.items() if k != "responseTime"} == {
            k: v for k, v in theirs.items() if k != "responseTime"
        }
    assert printed["checks"][0]["output"].startswith("connection refused")

    # Given the same results and clock, the CLI's bytes are the store's bytes.
    entries = output.entries_for(config.checks, results, now)
    assert output.format_json(entries, "4.5.6", now, now).encode() == store.health.body


NAGIOS_LINE = re.compile(
    r"^PROBE (OK|WARNING|CRITICAL|UNKNOWN) - (?P<summary>[^|\n]+?)(?: \| (?P<perf>.+))?$"
)
PERF_ITEM = re.compile(
    r"^'(?P<label>(?:[^']|'')+)'=(?P<value>-?\d+(?:\.\d+)?|U)(?P<uom>s|ms|us|%|B|KB|MB|TB|c)?"
    r"(?:;(?P<warn>[^;]*)(?:;(?P<crit>[^;]*)(?:;(?P<min>[^;]*)(?:;(?P<max>[^;]*))?)?)?)?$"
)
RANGE = re.compile(r"^@?(-?\d+(\.\d+)?|~)?:?(-?\d+(\.\d+)?)?$")


def parse_nagios(line: str) -> tuple[str, str, dict[str, dict[str, str]]]:
    match = NAGIOS_LINE.match(line)
    assert match, line
    perf: dict[str, dict[str, str]] = {}
    for item in (match["perf"] or "").split(" "):
        if not item:
            continue
        fields = PERF_ITEM.match(item)
        assert fields, item
        for key in ("warn", "crit", "min", "max"):
            assert RANGE.match(fields[key] or ""), item
        perf[fields["label"]] = {k: v or "" for k, v in fields.groupdict().items()}
    return match[1], match["summary"], perf


async def test_nagios_output_parses(
    pg_dsn: str, redis_url: str, pg_proxy: FaultProxy, write_config: WriteConfig
) -> None:
    config = two_checks(
        pg_dsn, redis_url, pg_warn="warn: { response_time: 500ms }\n    fail: { response_time: 2s }"
    )
    out = await arun_cli("check", "-c", str(write_config(config)), "--format", "nagios")
    assert out.code == 0, out
    assert out.stdout.count("\n") == 1
    word, summary, perf = parse_nagios(out.stdout.rstrip("\n"))
    assert (word, summary) == ("OK", "healthy: 2 checks pass")
    assert perf["database_time"]["uom"] == "s"
    assert (perf["database_time"]["warn"], perf["database_time"]["crit"]) == ("0.5", "2")
    assert perf["database_time"]["min"] == "0"
    assert perf["redis_time"]["uom"] == "s"

    pg_proxy.set(Mode.REFUSE)
    broken = two_checks(proxied_dsn(pg_dsn, pg_proxy), redis_url)
    out = await arun_cli("check", "-c", str(write_config(broken)), "--format", "nagios")
    assert out.code == 2
    word, summary, _ = parse_nagios(out.stdout.rstrip("\n"))
    assert word == "CRITICAL"
    assert summary.startswith("unhealthy: database fail: ")


def test_nagios_config_error_is_unknown(write_config: WriteConfig) -> None:
    out = run_cli("check", "-c", str(write_config("checks: [{ name: x }]")), "--format", "nagios")
    assert out.code == 3
    word, summary, perf = parse_nagios(out.stdout.rstrip("\n"))
    assert word == "UNKNOWN" and perf == {}
    assert "checks[0].type: unknown check type missing" in summary
    assert "checks[0].type: unknown check type missing" in out.stderr


def test_secrets_never_printed(write_config: WriteConfig) -> None:
    config = """
checks:
  - name: database
    type: postgres
    dsn: postgresql://app:hunter2secret@127.0.0.1:1/app
    timeout: 1s
"""
    path = write_config(config)
    for fmt in ("text", "json", "nagios"):
        out = run_cli("check", "-c", str(path), "--format", fmt)
        assert out.code == 1, (fmt, out)
        assert "hunter2secret" not in out.stdout + out.stderr


def _loaded_after_check(config: Path, env: dict[str, str]) -> tuple[set[str], str]:
    """The modules `probe check -c config` loaded, and PYDANTIC_DISABLE_PLUGINS as probe
    saw it, from inside a fresh interpreter."""
    script = (
        "import os, sys\n"
        "from probe.cli.main import main\n"
        "main(['check', '-c', sys.argv[1]])\n"
        "print('--- after the check')\n"
        "print(os.environ.get('PYDANTIC_DISABLE_PLUGINS', '-'))\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    run_env = cli_env(env)
    if "PYDANTIC_DISABLE_PLUGINS" not in env:  # set by tests that ran main() in this process
        run_env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(config)],
        capture_output=True, text=True, timeout=30, env=run_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    after = done.stdout.split("--- after the check\n", 1)[1].split()
    return set(after[1:]), after[0]


def test_one_tcp_check_loads_what_it_needs_only(write_config: WriteConfig) -> None:
    # A closed port: the verdict does not matter, what the run loaded does.
    config = write_config(
        f"checks:\n  - {{ name: port, type: tcp, host: 127.0.0.1, port: {free_port()} }}\n"
    )
    loaded, plugins = _loaded_after_check(config, {})
    assert "probe.checks.tcp" in loaded
    # Drivers of other types, and apscheduler (for cron maintenance windows, which look up
    # its version in every installed package on import), are not loaded.
    assert not {"asyncpg", "redis", "aiohttp", "psutil", "apscheduler"} & loaded
    # pydantic's plugin scan is off in probe's process, unless the environment says.
    assert plugins == "__all__"
    _, plugins = _loaded_after_check(config, {"PYDANTIC_DISABLE_PLUGINS": "logfire"})
    assert plugins == "logfire"
