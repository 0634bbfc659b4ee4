"""Throw-away servers for the deep-measure tests, whose conditions change server settings.

- `deep_pg`: a PostgreSQL cluster of this test session (`wal_level=logical` for slots,
  `max_connections=20` for the reserved-slots case, a short `deadlock_timeout`), with a
  `pg_monitor` role, a role without it, and an `app` role owning database `deep`.
- `pgbouncer`: PgBouncer in transaction mode in front of it (installed from Debian's
  packages when missing).
- `redis_servers`: starts a redis-server per call with the given options.
- `round_trips`: a fixture making FaultProxies that count request/response round trips.

Test modules load these with `pytest_plugins = ["tests.deep_servers"]` and import its
names too, so pytest cannot rewrite its asserts (it has none): PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
import redis as redis_sync

from tests.conftest import free_port, wait_for_port
from tests.faultproxy import FaultProxy

PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
DEEP_DB = "deep"
# Roles of the cluster: a monitor, a plain role, and the app's own.
MONITOR, PLAIN, APP = "probe_monitor", "probe_plain", "app"


def _run(*args: str) -> None:
    done = subprocess.run([*AS_POSTGRES, *args], capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")


# ---------------------------------------------------------------- PostgreSQL


@dataclass
class DeepCluster:
    port: int
    workdir: Path
    bin: Path

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def dsn(self, role: str = "postgres", port: int | None = None, db: str = DEEP_DB) -> str:
        return f"postgresql://{role}@127.0.0.1:{port or self.port}/{db}"

    async def connect(self, role: str = APP, app_name: str = "deep-test") -> asyncpg.Connection:
        """A session of `role` in the test database, named `app_name`."""
        return await asyncpg.connect(
            self.dsn(role), timeout=5, server_settings={"application_name": app_name}
        )

    def pg_ctl(self, *args: str) -> None:
        log = str(self.workdir / "server.log")
        _run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", log, *args)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c wal_level=logical -c max_connections=20 -c deadlock_timeout=100ms"
        )
        self.pg_ctl("-o", options, "-w", "start")

    def restart(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")
        self.start()


@pytest.fixture(scope="session")
def deep_pg() -> Iterator[DeepCluster]:
    if not PG_BINS:
        pytest.fail("PostgreSQL server binaries are not installed (/usr/lib/postgresql/*/bin)")
    workdir = Path(tempfile.mkdtemp(prefix="probe-deep-pg-"))
    if AS_POSTGRES:
        shutil.chown(workdir, "postgres")
    cluster = DeepCluster(port=free_port(), workdir=workdir, bin=PG_BINS[-1])
    try:
        _run(str(cluster.bin / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-N",
             "-A", "trust")  # fmt: skip
        cluster.start()
        asyncio.run(_make_roles(cluster))
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            cluster.pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


async def _make_roles(cluster: DeepCluster) -> None:
    conn = await asyncpg.connect(cluster.dsn(db="postgres"), timeout=10)
    try:
        await conn.execute(
            f"CREATE ROLE {MONITOR} LOGIN IN ROLE pg_monitor;"
            f"CREATE ROLE {PLAIN} LOGIN;"
            f"CREATE ROLE {APP} LOGIN;"
        )
        await conn.execute(f"CREATE DATABASE {DEEP_DB} OWNER {APP}")
    finally:
        await conn.close()
    conn = await cluster.connect(APP)
    try:
        await conn.execute(
            "CREATE TABLE rows (id int PRIMARY KEY); INSERT INTO rows VALUES (1), (2)"
        )
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pgbouncer(deep_pg: DeepCluster) -> Iterator[int]:
    """PgBouncer in transaction mode in front of `deep_pg`; its port."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        _apt_install("pgbouncer")
    port = free_port()
    workdir = deep_pg.workdir / "pgbouncer"
    workdir.mkdir()
    users = "\n".join(f'"{role}" ""' for role in (MONITOR, PLAIN, APP, "postgres"))
    (workdir / "users.txt").write_text(users + "\n")
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
{DEEP_DB} = host=127.0.0.1 port={deep_pg.port} dbname={DEEP_DB}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "users.txt"}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 50
logfile = {workdir / "pgbouncer.log"}
pidfile = {workdir / "pgbouncer.pid"}
"""
    )
    if AS_POSTGRES:
        shutil.chown(workdir, "postgres")
    # PgBouncer refuses to run as root.
    proc = subprocess.Popen(
        [*AS_POSTGRES, binary, str(workdir / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, capture_output=True, env=env, timeout=300).returncode == 0:
        return
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=300)
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode:
        pytest.fail(f"apt-get install {package} failed: {done.stderr.strip()[-300:]}")


# ---------------------------------------------------------------- Redis


@dataclass
class RedisServers:
    workdir: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, *options: str) -> int:
        """A redis-server with these extra options; its port, once it answers PING."""
        port = free_port()
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.procs[port] = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(port)
        return port

    def stop(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(10)

    def restart(self, port: int) -> None:
        """The same server started again on the same port (a new run_id)."""
        args = self.procs[port].args
        self.stop(port)
        self.procs[port] = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(port)

    def client(self, port: int) -> redis_sync.Redis:
        return redis_sync.Redis("127.0.0.1", port, decode_responses=True)


@pytest.fixture
def redis_servers(tmp_path: Path) -> Iterator[RedisServers]:
    servers = RedisServers(tmp_path)
    try:
        yield servers
    finally:
        for port in list(servers.procs):
            servers.stop(port)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)


# ---------------------------------------------------------------- round trips


@pytest.fixture
async def round_trips() -> AsyncIterator[Callable[[int], asyncio.Future[FaultProxy]]]:
    """`await round_trips(port)`: a proxy in front of 127.0.0.1:port counting round trips."""
    made: list[FaultProxy] = []

    def make(port: int) -> asyncio.Future[FaultProxy]:
        proxy = FaultProxy("127.0.0.1", port)
        made.append(proxy)
        return asyncio.ensure_future(proxy.start())

    yield make
    for proxy in made:
        await proxy.close()
