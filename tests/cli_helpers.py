"""Run the real `probe` command line in a child process, as a user or a script would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "NO_COLOR")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Outcome:
    """Blocking: for tests whose servers do not live on the test's event loop."""
    done = subprocess.run(
        [sys.executable, "-m", "probe", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd or REPO / "tests",
        env=cli_env(env),
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


async def arun_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Outcome:
    """Non-blocking: the fault proxies and test servers run on this event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "probe",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd or REPO / "tests",
        env=cli_env(env),
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return Outcome(proc.returncode, stdout.decode(), stderr.decode())
