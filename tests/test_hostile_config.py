"""Hostile config and state files (reliability findings F4, F5, F7, F8, F11): each one is
one clear line, never a traceback, never a secret, and the agent keeps serving and
keeps reloading."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.contract.config import ConfigError, load_config
from probe.engine.alerts.state import load_state
from tests.cli_helpers import cli_env, run_cli
from tests.conftest import free_port

CANARY = "CanaryPw7391"

ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)

# (id, file text, the problem line after "<file>: ")
ODD_FILES = [
    ("deep-nesting", "checks: " + "[" * 1000 + "]" * 1000, "nested too deeply"),
    ("complex-key", "checks:\n  - ? [a, b]\n    : 1\n", "cannot be read as a probe config"),
    ("float-tag", "defaults: { timeout: !!float 5s }\n", "cannot be read as a probe config"),
    ("timestamp-tag", "defaults: { timeout: !!timestamp 5s }\n", "cannot be read as"),
    ("huge-number", "agent: { live_timeout: " + "9" * 5000 + " }\n", "a number is too long"),
    ("alias-bomb", ALIAS_BOMB + "\n", "more than 100,000 values once YAML aliases"),
]


@pytest.mark.parametrize(("name", "text", "expected"), ODD_FILES, ids=[c[0] for c in ODD_FILES])
def test_odd_yaml_is_one_config_error_line(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert time.monotonic() - started < 2, f"{name} took too long to refuse"
    (line,) = caught.value.problems
    assert line.startswith(f"{path}: ") and expected in line


def test_validate_prints_the_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(ALIAS_BOMB + "\n")
    out = run_cli("validate", "-c", str(path))
    assert out.code == 2
    assert out.stderr.strip() == (
        f"{path}: more than 100,000 values once YAML aliases are expanded; is this the config?"
    )


@pytest.mark.parametrize(
    "text",
    [
        f"checks:\n  - postgresql://app:{CANARY}@db:5432/app\n",
        f"checks: postgresql://app:{CANARY}@db:5432/app\n",
        f"checks: []\nalerts:\n  notifiers:\n    - https://hooks.slack.com/services/T0/B0/{CANARY}\n",
        "checks:\n  - { name: h, type: http, "
        f'url: "htps://api.x.com/v1?auth={CANARY}&pwd={CANARY}" }}\n',
    ],
)
def test_config_errors_never_echo_a_secret(tmp_path: Path, text: str) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(text)
    out = run_cli("validate", "-c", str(path))
    assert out.code == 2
    assert out.stderr.strip(), "expected a problem line"
    assert CANARY not in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_a_key_with_a_line_break_stays_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text('agent:\n  "na\\r\\nme": x\n')
    out = run_cli("validate", "-c", str(path))
    assert out.code == 2
    assert out.stderr.splitlines() == [f"{path}: agent.'na\\r\\nme': unknown key"]


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    os.mkfifo(path)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert time.monotonic() - started < 2
    assert caught.value.problems == [f"{path}: not a regular file, expected a YAML file"]


@settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.text(
        alphabet=st.sampled_from(list("abc:-[]{}&*!?|>'\"#\n 0123456789.%$")),
        max_size=200,
    )
)
def test_fuzzed_files_give_config_errors_only(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        assert exc.problems and all(p.startswith(f"{path}: ") for p in exc.problems)
        assert all("\n" not in p for p in exc.problems)


# ---------------------------------------------------------------- the running agent


async def _names(session: aiohttp.ClientSession, base: str) -> list[str] | None:
    try:
        async with session.get(f"{base}/health") as response:
            body: dict[str, Any] = await response.json()
    except aiohttp.ClientError:
        return None
    return [c["name"] for c in body["checks"]]


async def _wait_names(
    session: aiohttp.ClientSession, base: str, want: list[str], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _names(session, base) == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"/health never listed {want}; last {await _names(session, base)}")


async def _line_with(stream: asyncio.StreamReader, words: str, timeout: float) -> str:
    async with asyncio.timeout(timeout):
        while line := (await stream.readline()).decode():
            if words in line:
                return line
    raise AssertionError(f"the agent exited before logging {words!r}")


async def test_odd_files_on_reload_never_stop_later_reloads(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    head = f'agent: {{ listen: "127.0.0.1:{port}", history: "off" }}\nchecks:\n'
    one = "  - { name: host, type: system, interval: 2s, timeout: 1s }\n"
    two = one + one.replace("name: host", "name: host2")
    path = tmp_path / "live.yaml"
    path.write_text(head + one)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "probe",
        "run",
        "-c",
        str(path),
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            await _wait_names(session, base, ["host"], 15)
            for _, text, expected in ODD_FILES:
                path.write_text(text)
                process.send_signal(signal.SIGHUP)
                seen.append(await _line_with(process.stderr, "reload rejected", 10))
                assert expected in seen[-1]
                async with session.get(f"{base}/live") as live:
                    assert live.status == 200
            path.write_text(head + two)
            process.send_signal(signal.SIGHUP)
            await _wait_names(session, base, ["host", "host2"], 10)
    finally:
        process.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(process.stderr.read(), 15)).decode()
        await process.wait()
    assert all(json.loads(line)["level"] == "error" for line in seen)
    assert "Traceback" not in rest + "".join(seen)


# ---------------------------------------------------------------- the alert state file


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000 + "]" * 200_000,
        '{"version": 1, "alerts": [], "outbox": {"slack[0]": [{"agent": "a", "created": NaN, '
        '"alerts": [{"check": "dep", "severity": "critical", "kind": "firing", '
        '"since": 1e999, "at": 1}]}]}}',
        '{"version": 1, "alerts": [{"check": "x", "since": 1e999}], "outbox": {}}',
    ],
    ids=["deep-nesting", "nan-and-infinity", "infinite-alert-time"],
)
def test_a_corrupt_state_file_is_ignored_with_one_line(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    assert load_state(path) is None
    (record,) = [r for r in caplog.records if "state file" in r.getMessage()]
    assert record.getMessage().startswith(f"ignoring alert state file {path}: ")
    assert "\n" not in record.getMessage()
