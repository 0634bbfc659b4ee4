"""The real BullMQ for Node (npm `bullmq@6`, what the app runs), for tests that need its
workers, schedulers and events: installed into tests/node on first use, then scripts run
with `node` against a Redis URL.

    result = run_node(SCRIPT, redis_url, timeout=20)   # SCRIPT: CommonJS source text

Scripts read `process.env.REDIS_URL`, `require("bullmq")` and print one JSON line last;
`run_node` returns it parsed. `start_node` starts one in the background (a worker that a
test SIGKILLs, say) and returns the process.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"


def ensure_node_package(package: str) -> Path:
    """tests/node/node_modules with `package` (as package.json asks), installed once under
    a lock; skips the test with the reason when Node or npm is missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(f"Node.js and npm are needed for {package} (apt-get install nodejs npm)")
    marker = NODE_DIR / "node_modules" / package / "package.json"
    if marker.is_file():
        return NODE_DIR
    with open(NODE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.is_file():
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--silent"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                pytest.fail(f"npm install of {package} failed: {done.stderr.strip()[-500:]}")
    return NODE_DIR


def ensure_bullmq() -> Path:
    return ensure_node_package("bullmq")


def _command(script: str) -> list[str]:
    return ["node", "-e", script]


def _env(redis_url: str, extra: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, **(extra or {})}


def run_node(
    script: str, redis_url: str, timeout: float = 20.0, env: dict[str, str] | None = None
) -> Any:
    """Run a script to its end; the parsed JSON of its last stdout line (None if none)."""
    cwd = ensure_bullmq()
    done = subprocess.run(
        _command(script),
        cwd=cwd,
        env=_env(redis_url, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(f"node script failed ({done.returncode}): {done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def start_node(
    script: str, redis_url: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start a script in the background; the caller stops it (kill, then wait)."""
    cwd = ensure_bullmq()
    return subprocess.Popen(
        _command(script),
        cwd=cwd,
        env=_env(redis_url, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
