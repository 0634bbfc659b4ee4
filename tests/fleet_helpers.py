"""Real `probe run` replicas and a Redis that a test may stop and start again on the same
port: what the fleet tests are made of."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import REPO, cli_env
from tests.conftest import free_port, wait_for_port
from tests.deep_servers import DeepCluster
from tests.slack_receiver import SlackReceiver


class ThrowAwayRedis:
    """A redis-server of the test's own, on a fixed port so it can come back after a stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="probe-fleet-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Replica:
    """One `probe run` child process with its own port and log file."""

    def __init__(self, config: Path, index: int, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.index = index
        self.log_path = config.parent / f"replica-{index}.log"
        self.config = config
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "probe", "run", "-c", str(self.config),
            stdout=log, stderr=log, cwd=REPO / "tests",
            env=cli_env({"PROBE_PORT": str(self.port), **self.env}),
        )  # fmt: skip
        log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def get(self, path: str) -> tuple[int, str]:
        """Blocking GET (run it off the loop)."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    async def fleet(self) -> dict[str, Any] | None:
        """The verbose /health `fleet` object, or None while the replica does not answer."""
        try:
            _, body = await asyncio.to_thread(self.get, "/health?verbose=1")
        except OSError:
            return None
        found: dict[str, Any] | None = json.loads(body).get("fleet")
        return found

    async def metrics(self) -> str:
        return (await asyncio.to_thread(self.get, "/metrics"))[1]

    def logged(self) -> str:
        return self.log_path.read_text(errors="replace")


async def leader_among(replicas: list[Replica], timeout: float = 20.0) -> Replica:
    """The one replica that says it leads, once every running replica agrees on it."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any] | None] = []
    while time.monotonic() < deadline:
        running = [r for r in replicas if r.running]
        seen = [await r.fleet() for r in running]
        leaders = [r for r, f in zip(running, seen, strict=True) if f and f["is_leader"]]
        named = {f["leader"] for f in seen if f}
        if len(leaders) == 1 and len(named) == 1 and None not in seen:
            return leaders[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no single leader within {timeout}s: {seen}")


@pytest.fixture(params=["redis", "postgres", "pgbouncer"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    dsn: str = request.getfixturevalue("pg_dsn")
    if request.param == "postgres":
        return dsn
    cluster: DeepCluster = request.getfixturevalue("deep_pg")
    bouncer: int = request.getfixturevalue("pgbouncer")  # transaction mode
    return cluster.dsn("postgres", port=bouncer)


LEASE = 3.0
QUIET = 3.0  # seconds to keep listening for a duplicate


@pytest.fixture
def checked_redis() -> Iterator[ThrowAwayRedis]:
    server = ThrowAwayRedis()
    server.start()
    yield server
    server.close()


def fleet_config(tmp_path: Path, backend: str, redis_port: int, receiver_port: int) -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(
        f"""
agent:
  name: replica
  listen: 127.0.0.1:${{PROBE_PORT}}
  history: "off"
  fleet: {{name: "fleet-{uuid.uuid4().hex[:8]}", backend: "{backend}", lease: {LEASE:g}s}}
defaults: {{interval: 1s, timeout: 500ms}}
checks:
  # The outage restarts Redis: its `restarts` warning is another story than the fleet's.
  - {{name: cache, type: redis, url: "redis://127.0.0.1:{redis_port}/0", critical: true,
      warn: {{restarts: "off"}}}}
alerts:
  for: {{warn: 1s, fail: 1s}}
  resolve_after: 2
  group_wait: 0s
  repeat: 0
  notifiers:
    - {{type: webhook, url: "http://127.0.0.1:{receiver_port}/services/fleet-hook"}}
"""
    )
    return path


def kinds(receiver: SlackReceiver) -> list[str]:
    return [body["kind"] for body in receiver.delivered]
