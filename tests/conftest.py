"""Shared fixtures: real PostgreSQL and Redis that this test run owns.

PostgreSQL: the machine's server on 127.0.0.1:5432 (or $PROBE_TEST_PG), with a fresh
database made for this run and dropped after it. Redis: a throw-away `redis-server`
on a free port, so CLIENT LIST, INFO and key counts see only this run's traffic.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from probe.contract.plugin import CheckConfig
from probe.engine.factory import build_runner
from probe.engine.runner import CheckRunner
from tests.faultproxy import FaultProxy

# Fixture modules shared by several test modules (which import none of them for fixtures):
# `receiver` (tests/slack_receiver.py), `otlp_receiver` (tests/otlp_receiver.py),
# `libfaketime` (tests/libfaketime.py), `saas` (tests/saas_standins.py), ...
pytest_plugins = [
    "tests.slack_receiver",
    "tests.otlp_receiver",
    "tests.libfaketime",
    "tests.saas_standins",
    "tests.alertmanager_server",
    "tests.app_workers",
    "tests.bullmq_fixtures",
    "tests.fleet_helpers",
    "tests.ping_helpers",
    "tests.prometheus_helpers",
    "tests.redirect_server",
]

PG_ADMIN_DSN = os.environ.get("PROBE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MakeRunner = Callable[..., CheckRunner]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A private redis-server for the whole test session: (host, port)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def redis_url(redis_server: tuple[str, int]) -> Iterator[str]:
    """A URL to an empty db of the private Redis; flushed after each test."""
    import redis as redis_sync

    host, port = redis_server
    url = f"redis://{host}:{port}/0"
    client = redis_sync.Redis(host=host, port=port, db=0)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A database of our own on the machine's PostgreSQL, dropped at the end of the run."""
    name = f"probe_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_address(pg_dsn: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(pg_dsn)
    return parts.hostname or "127.0.0.1", parts.port or 5432


@pytest.fixture
async def pg_proxy(pg_address: tuple[str, int]) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy(*pg_address).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def redis_proxy(redis_server: tuple[str, int]) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy(*redis_server).start()
    yield proxy
    await proxy.close()


@pytest.fixture
def write_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a YAML config text to a temp file and return its path."""

    def write(text: str, name: str = "probe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


class Runners:
    """Builds runners the way the agent does (config -> registry -> runner) and closes them."""

    def __init__(self) -> None:
        self._built: list[CheckRunner] = []

    def of(self, config: CheckConfig) -> CheckRunner:
        runner = build_runner(config)
        self._built.append(runner)
        return runner

    def maker(self, model: type[CheckConfig], **defaults: Any) -> MakeRunner:
        """A `make(**fields)` that validates `{**defaults, **fields}` as `model`."""

        def make(**fields: Any) -> CheckRunner:
            return self.of(model.model_validate({**defaults, **fields}))

        return make

    async def close(self) -> None:
        for runner in self._built:
            await runner.close()


@pytest.fixture
async def runners() -> AsyncIterator[Runners]:
    """Runners closed after the test, whatever it asserted."""
    built = Runners()
    yield built
    await built.close()


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """An unclosed socket or file warns when it is collected; collecting at the end of
    each test puts that ResourceWarning (an error here) on the test that leaked it,
    not on whichever test happens to run when the collector does."""
    yield
    gc.collect()
