"""The postgres check against the machine's real PostgreSQL, directly and through a fault proxy."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from probe.checks.postgres import PostgresConfig
from probe.contract.config import ConfigError, load_config
from probe.core.model import CheckResult, Status
from tests.conftest import MakeRunner, Runners, free_port
from tests.faultproxy import FaultProxy, Mode
from tests.support import settled

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CANARY = "canary-Pw-7731"


@pytest.fixture
def make_runner(runners: Runners) -> MakeRunner:
    return runners.maker(PostgresConfig, name="database", type="postgres", timeout=2)


def observed(result: CheckResult) -> dict[str, float | None]:
    return {o.measure: o.value for o in result.observations}


def via_proxy(dsn: str, proxy: FaultProxy, password: str = "") -> str:
    parts = urlsplit(dsn)
    auth = f"{parts.username}:{password}@" if password else f"{parts.username}@"
    return f"postgresql://{auth}{proxy.host}:{proxy.port}{parts.path}"


async def probe_sessions(dsn: str) -> int:
    """How many connections named `probe` the server sees in our database."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'probe' AND datname = current_database()"
        )
        return count
    finally:
        await conn.close()


async def test_healthy_database_from_yaml_passes(
    write_config: Any, pg_dsn: str, runners: Runners
) -> None:
    path = write_config(
        f"""
checks:
  - name: database
    type: postgres
    dsn: {pg_dsn}
    critical: true
    warn: {{ response_time: 5s, connections: 90% }}
"""
    )
    result = await runners.of(load_config(path, environ={}).checks[0]).run()

    assert result.status is Status.PASS
    assert result.output == ""
    values = observed(result)
    assert values["response_time"] is not None and values["response_time"] > 0
    assert values["connections"] is not None and 0 < values["connections"] < 1
    assert "replication_lag" not in values  # a primary has no replication lag


async def test_one_pooled_connection_named_probe_is_reused_and_closed(
    make_runner: MakeRunner, pg_dsn: str
) -> None:
    runner = make_runner(dsn=pg_dsn)
    for _ in range(3):
        assert (await runner.run()).status is Status.PASS
    assert await probe_sessions(pg_dsn) == 1

    await runner.close()
    await runner.close()  # safe twice
    assert await settled(lambda: probe_sessions(pg_dsn), 0) == 0


async def test_checks_of_one_dsn_share_one_server_connection_until_the_last_closes(
    make_runner: MakeRunner, pg_dsn: str
) -> None:
    first = make_runner(name="first", dsn=pg_dsn)
    second = make_runner(name="second", dsn=pg_dsn)
    other_query = make_runner(name="counting", dsn=pg_dsn, query="SELECT count(*) FROM pg_class")
    for _ in range(2):
        for runner in (first, second):
            assert (await runner.run()).status is Status.PASS
    assert await probe_sessions(pg_dsn) == 1

    # A custom query may leave session state behind: its check gets a connection of its own.
    assert (await other_query.run()).status is Status.PASS
    assert await probe_sessions(pg_dsn) == 2
    await other_query.close()

    await first.close()
    assert (await second.run()).status is Status.PASS  # the pool outlives its first user
    assert await probe_sessions(pg_dsn) == 1
    await second.close()
    assert await settled(lambda: probe_sessions(pg_dsn), 0) == 0


async def test_checks_recover_when_the_server_kills_their_shared_connection(
    make_runner: MakeRunner, pg_dsn: str
) -> None:
    first = make_runner(name="first", dsn=pg_dsn)
    second = make_runner(name="second", dsn=pg_dsn)
    assert (await first.run()).status is Status.PASS

    conn = await asyncpg.connect(pg_dsn, timeout=5)
    try:
        killed = await conn.fetchval(
            # With a timeout the call waits for the backend to be gone (PostgreSQL 14+).
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE application_name = 'probe' AND datname = current_database()"
        )
    finally:
        await conn.close()
    assert killed == 1

    # The run after the kill finds the dead socket and reconnects; so does the other check.
    assert (await second.run()).status is Status.PASS
    assert (await first.run()).status is Status.PASS
    assert await probe_sessions(pg_dsn) == 1
    await first.close()
    await second.close()


async def test_custom_query_runs_and_its_error_is_reported(
    make_runner: MakeRunner, pg_dsn: str
) -> None:
    ok = await make_runner(dsn=pg_dsn, query="SELECT count(*) FROM pg_class").run()
    broken = await make_runner(dsn=pg_dsn, query="SELECT * FROM no_such_table").run()

    assert ok.status is Status.PASS
    assert broken.status is Status.FAIL
    assert broken.output == 'query failed: relation "no_such_table" does not exist'


async def test_closed_port_fails_fast_with_connection_refused(make_runner: MakeRunner) -> None:
    port = free_port()
    result = await make_runner(dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres").run()

    assert result.status is Status.FAIL
    assert result.output == f"connection refused (127.0.0.1:{port})"
    assert result.response_time < 1


async def test_unknown_host_says_dns_lookup_failed(make_runner: MakeRunner) -> None:
    result = await make_runner(dsn="postgresql://postgres@db.probe-test.invalid/postgres").run()

    assert result.status is Status.FAIL
    assert result.output == "DNS lookup failed for db.probe-test.invalid"


async def test_proxy_that_drops_connections_fails_with_words(
    make_runner: MakeRunner, pg_dsn: str, pg_proxy: FaultProxy
) -> None:
    pg_proxy.set(Mode.REFUSE)
    result = await make_runner(dsn=via_proxy(pg_dsn, pg_proxy)).run()

    assert result.status is Status.FAIL
    assert result.output in (
        f"connection reset by server (127.0.0.1:{pg_proxy.port})",
        f"connection closed by server (127.0.0.1:{pg_proxy.port})",
    )


async def test_blackholed_server_times_out_without_holding_up_other_checks(
    make_runner: MakeRunner, pg_dsn: str, pg_proxy: FaultProxy
) -> None:
    pg_proxy.set(Mode.BLACKHOLE)
    stuck = make_runner(name="stuck", dsn=via_proxy(pg_dsn, pg_proxy), timeout=1)
    healthy = make_runner(name="healthy", dsn=pg_dsn, timeout=1)

    started = time.monotonic()
    stuck_result, healthy_result = await asyncio.gather(stuck.run(), healthy.run())
    elapsed = time.monotonic() - started

    assert stuck_result.status is Status.FAIL
    assert stuck_result.output == "timed out after 1s"
    assert elapsed < 2.5  # one timeout, not asyncpg's default 60 s
    assert healthy_result.status is Status.PASS
    assert healthy_result.response_time < 1


async def test_slow_server_warns_on_response_time(
    make_runner: MakeRunner, pg_dsn: str, pg_proxy: FaultProxy
) -> None:
    pg_proxy.set(Mode.DELAY, delay=0.05)
    runner = make_runner(dsn=via_proxy(pg_dsn, pg_proxy), timeout=5, warn={"response_time": "20ms"})
    result = await runner.run()

    assert result.status is Status.WARN
    assert result.output.startswith("response_time ")
    assert result.output.endswith("> 20ms")


async def test_pooled_connection_recovers_when_the_server_comes_back(
    make_runner: MakeRunner, pg_dsn: str, pg_proxy: FaultProxy
) -> None:
    runner = make_runner(dsn=via_proxy(pg_dsn, pg_proxy), timeout=1)
    assert (await runner.run()).status is Status.PASS

    pg_proxy.set(Mode.REFUSE)
    assert (await runner.run()).status is Status.FAIL
    pg_proxy.set(Mode.FORWARD)
    assert (await runner.run()).status is Status.PASS

    pg_proxy.set(Mode.BLACKHOLE)
    assert (await runner.run()).output == "timed out after 1s"
    pg_proxy.set(Mode.FORWARD)
    assert (await runner.run()).status is Status.PASS


async def test_connection_cut_while_idle_does_not_fail_the_next_run(
    make_runner: MakeRunner, pg_dsn: str, pg_proxy: FaultProxy
) -> None:
    # A restart or a pooler's idle timeout closes the pooled socket between runs.
    runner = make_runner(dsn=via_proxy(pg_dsn, pg_proxy))
    assert (await runner.run()).status is Status.PASS
    pg_proxy.drop_connections()

    assert (await runner.run()).status is Status.PASS


async def test_unknown_database_and_role_use_the_servers_words(
    make_runner: MakeRunner, pg_dsn: str
) -> None:
    base = pg_dsn.rsplit("/", 1)[0]
    no_db = await make_runner(dsn=f"{base}/probe_no_such_db").run()
    no_role = await make_runner(dsn=pg_dsn.replace("postgres@", "probe_ghost_role@")).run()

    assert no_db.output == 'database "probe_no_such_db" does not exist'
    assert no_role.output == 'role "probe_ghost_role" does not exist'


async def test_dsn_password_never_shows(make_runner: MakeRunner, pg_dsn: str) -> None:
    base = pg_dsn.rsplit("/", 1)[0].replace("postgres@", f"postgres:{CANARY}@")
    runner = make_runner(dsn=f"{base}/probe_no_such_db?password={CANARY}")
    result = await runner.run()

    assert result.status is Status.FAIL
    assert CANARY not in result.output
    assert CANARY not in runner.config.target()
    assert runner.config.target().startswith("postgresql://postgres:***@127.0.0.1")
    assert CANARY in runner.config.secrets()


def test_dsn_must_be_a_postgres_url(write_config: Any) -> None:
    path = write_config(
        "checks:\n  - { name: db, type: postgres, dsn: 'mysql://u:hunter22@h/x' }\n"
        "  - { name: db2, type: postgres, dsn: 'postgresql://h/x', warn: { memory: 80% } }\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    problems = caught.value.problems
    assert problems[0] == (
        f"{path}: checks[0].dsn: expected a URL like postgresql://user:password@host:5432/db, "
        "got 'mysql://u:***@h/x'"
    )
    assert problems[1].startswith(f"{path}: checks[1].warn: unknown measure 'memory'")


# ---------------------------------------------------------------- a private primary + standby


@dataclass(frozen=True)
class Cluster:
    primary: int  # port
    standby: int  # port of a streaming replica of the primary
    password: str  # the superuser's


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A throw-away primary that asks for passwords, and a standby streaming from it."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL server binaries are not installed")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    workdir = Path(tempfile.mkdtemp(prefix="probe-pg-"))
    made = Cluster(primary=free_port(), standby=free_port(), password="right-password")
    (workdir / "pw").write_text(made.password)
    if as_postgres:
        shutil.chown(workdir, "postgres")
        shutil.chown(workdir / "pw", "postgres")

    def run(*args: str) -> None:
        env = {**os.environ, "PGPASSWORD": made.password}
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, env=env)

    def start(data: Path, port: int) -> None:
        options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        # With a log file the server does not hold our output pipe open.
        log = str(workdir / f"{data.name}.log")
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", log, "-o", options, "-w", "start")

    primary, standby = workdir / "primary", workdir / "standby"
    try:
        run(str(PG_BIN / "initdb"), "-D", str(primary), "-U", "postgres", "-N",
            "--auth=scram-sha-256", f"--pwfile={workdir / 'pw'}")  # fmt: skip
        start(primary, made.primary)
        run(str(PG_BIN / "pg_basebackup"), "-D", str(standby), "-R", "-h", "127.0.0.1",
            "-p", str(made.primary), "-U", "postgres", "-c", "fast", "--no-sync")  # fmt: skip
        start(standby, made.standby)
        yield made
    finally:
        for data in (standby, primary):
            if (data / "postmaster.pid").exists():
                run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


async def test_wrong_password_says_authentication_failed(
    make_runner: MakeRunner, cluster: Cluster
) -> None:
    base = f"127.0.0.1:{cluster.primary}/postgres"
    wrong = await make_runner(dsn=f"postgresql://postgres:{CANARY}@{base}").run()
    right = await make_runner(dsn=f"postgresql://postgres:{cluster.password}@{base}").run()

    assert wrong.status is Status.FAIL
    assert wrong.output == 'password authentication failed for user "postgres"'
    assert CANARY not in wrong.output
    assert right.status is Status.PASS


async def test_standby_reports_replication_lag(make_runner: MakeRunner, cluster: Cluster) -> None:
    auth = f"postgres:{cluster.password}@127.0.0.1"
    primary = make_runner(name="primary", dsn=f"postgresql://{auth}:{cluster.primary}/postgres")
    standby = make_runner(
        name="standby",
        dsn=f"postgresql://{auth}:{cluster.standby}/postgres",
        warn={"replication_lag": "1m"},
    )
    primary_result, standby_result = await primary.run(), await standby.run()

    assert "replication_lag" not in observed(primary_result)
    lag = observed(standby_result)["replication_lag"]
    assert standby_result.status is Status.PASS
    assert lag is not None and 0 <= lag < 60


async def running_probe_sleeps(dsn: str) -> int:
    """Statements of ours still running pg_sleep on the server."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'probe' "
            "AND datname = current_database() AND state = 'active' AND query LIKE '%pg_sleep%'"
        )
        return count
    finally:
        await conn.close()


async def test_timed_out_query_is_cancelled_on_the_server(
    make_runner: MakeRunner, pg_dsn: str
) -> None:
    runner = make_runner(dsn=pg_dsn, query="SELECT pg_sleep(10)", timeout="500ms")
    for _ in range(3):
        result = await runner.run()
        assert result.status is Status.FAIL
        assert result.output == "timed out after 500ms"

    deadline = time.monotonic() + 5
    while await running_probe_sleeps(pg_dsn) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await running_probe_sleeps(pg_dsn) == 0


async def test_server_that_hangs_up_during_the_handshake_is_named(
    make_runner: MakeRunner,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(8)  # asyncpg's SSLRequest
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await make_runner(dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres").run()
    finally:
        server.close()
        await server.wait_closed()

    assert result.status is Status.FAIL
    assert result.output == f"connection closed by server (127.0.0.1:{port})"


def test_bad_port_and_sslmode_are_config_errors(write_config: Any) -> None:
    path = write_config(
        f"""
checks:
  - {{ name: a, type: postgres, dsn: 'postgresql://u:{CANARY}@h:abc/db' }}
  - {{ name: b, type: postgres, dsn: 'postgresql://u@h1:5432,h2:70000/db' }}
  - {{ name: c, type: postgres, dsn: 'postgresql://u:{CANARY}@h/db?sslmode=bogus' }}
  - {{ name: d, type: postgres, dsn: 'postgresql://u@[::1]:6432/db?sslmode=verify-full' }}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.problems == [
        f"{path}: checks[0].dsn: port must be a number from 1 to 65535, got 'abc'",
        f"{path}: checks[1].dsn: port must be a number from 1 to 65535, got '70000'",
        f"{path}: checks[2].dsn: sslmode must be one of disable, allow, prefer, require, "
        "verify-ca, verify-full, got 'bogus'",
    ]
