"""Words that pointed the wrong way or broke lines: a top-level key with a line break, a
broken installation or a 5,000-digit number read as "an unusual YAML tag", and control
characters from a ping's body carried into outputs and pages. Read where users read them:
`probe validate` in a real process, and a real agent's `/health`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.cli_helpers import REPO, cli_env, run_cli
from tests.conftest import free_port
from tests.hostile import AgentProcess


def test_a_top_level_key_with_a_line_break_stays_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text('"a\\nb": 1\nchecks: []\n')
    done = run_cli("validate", "-c", str(path))
    assert (done.code, done.stderr) == (2, f"{path}: 'a\\nb': unknown key\n")


def test_a_number_too_long_is_called_that(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(
        "checks:\n  - { name: a, type: tcp, host: 127.0.0.1, port: " + "9" * 5000 + " }\n"
    )
    done = run_cli("validate", "-c", str(path))
    assert (done.code, done.stderr) == (
        2,
        f"{path}: a number is too long (more than 4,300 digits); is this the config?\n",
    )


def test_a_broken_installation_is_not_blamed_on_the_file(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text("checks:\n  - { name: cache, type: redis, url: 'redis://127.0.0.1:1' }\n")
    # What running probe under an interpreter without its dependencies looks like.
    code = (
        "import sys; sys.modules['redis.asyncio'] = None; from probe.cli.main import main; "
        f"sys.argv = ['probe', 'validate', '-c', {str(path)!r}]; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=cli_env(),
    )
    assert (done.returncode, done.stderr) == (
        2,
        "probe's installation is broken: cannot import redis.asyncio; reinstall probe\n",
    )


async def test_control_characters_in_a_ping_body_reach_no_output(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "probe.yaml"
    config.write_text(
        f'agent: {{ listen: "127.0.0.1:{port}", history: "off" }}\n'
        "checks:\n"
        "  - { name: hb, type: heartbeat, every: 1h, interval: 500ms, timeout: 400ms }\n"
    )
    agent = AgentProcess(config, port, tmp_path / "agent.log").start()
    try:
        await agent.wait_until_serving()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            body = b"disk full\x00\x00 on /dev/sda1 \x1b[31mred\x1b[0m"
            async with session.post(f"{agent.base}/ping/hb/1", data=body) as response:
                assert response.status == 200
            output = ""
            for _ in range(40):
                async with session.get(f"{agent.base}/health") as response:
                    raw = await response.read()
                output = json.loads(raw)["checks"][0].get("output", "")
                if output.startswith("last run failed"):
                    break
                await asyncio.sleep(0.1)
    finally:
        assert agent.stop() == 0
    assert b"\\u0000" not in raw and b"\\u001b" not in raw
    assert (
        output
        == "last run failed (exit 1): disk full\ufffd\ufffd on /dev/sda1 \ufffd[31mred\ufffd[0m"
    )
