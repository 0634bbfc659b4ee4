"""The PostgreSQL store against real servers: the machine's (a fresh database for this
run), and a throw-away cluster that is stopped mid-run while the agent keeps serving."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from probe.agent import Agent
from probe.contract.notification import Kind, Severity
from probe.core.model import Status
from probe.engine.history.codec import decode_chunk
from probe.engine.history.postgres import PostgresBackend
from probe.engine.history.writer import HistoryWriter
from tests.history_helpers import NOW, alert, feed
from tests.pg_cluster import Cluster
from tests.status_helpers import agent_yaml, fetch, listening, start, until
from tests.support import HandClock

P, W, F = Status.PASS, Status.WARN, Status.FAIL


def pg_writer(dsn: str, clock: HandClock, source: str, checks: list[str]) -> HistoryWriter:
    return HistoryWriter(PostgresBackend(dsn), source, checks, clock=clock)


async def test_history_round_trips_through_the_machines_postgres(pg_dsn: str) -> None:
    source = f"test-{uuid.uuid4().hex[:8]}"
    clock = HandClock(NOW)
    first = pg_writer(pg_dsn, clock, source, ["api"])
    feed(first, "api", NOW - 30 * 60, [P] * 27 + [F] * 3)
    feed(first, "api", NOW - 3 * 86400, [W] * 10 + [F] * 10)
    first.record_alert(alert(Kind.FIRING, "api", NOW - 600, NOW - 540, Severity.WARNING))
    first.record_alert(alert(Kind.ESCALATED, "api", NOW - 600, NOW - 500, Severity.CRITICAL))
    await first.flush()
    assert first.available, first.problem
    await first.stop()

    second = pg_writer(pg_dsn, clock, source, ["api"])
    await second.flush()
    await second.stop()
    hours = second.hours["api"]
    assert sum(r.passed for r in hours.values()) == 27
    assert sum(r.failed for r in hours.values()) == 13
    assert sum(r.warned for r in hours.values()) == 10
    mine = [i for i in second.incidents() if i.source == source]
    assert [(i.severity, i.end) for i in mine] == [("critical", None)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    try:
        made = Cluster()
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"cannot make a throw-away PostgreSQL cluster: {exc}")
    made.start()
    try:
        yield made
    finally:
        made.destroy()


async def _admin(cluster: Cluster, *sql: str) -> None:
    conn = await asyncpg.connect(cluster.dsn(), timeout=5)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_tables_are_made_by_a_role_that_is_no_superuser(cluster: Cluster) -> None:
    role = f"app_{uuid.uuid4().hex[:6]}"
    await _admin(
        cluster,
        f"CREATE ROLE {role} LOGIN PASSWORD 'pw' NOSUPERUSER NOCREATEDB NOCREATEROLE",
        f"CREATE SCHEMA {role} AUTHORIZATION {role}",
    )
    writer = pg_writer(cluster.dsn(role, "pw"), HandClock(NOW), "a", ["api"])
    feed(writer, "api", NOW - 60, [P])
    await writer.flush()
    await writer.stop()
    assert writer.available, writer.problem
    conn = await asyncpg.connect(cluster.dsn(), timeout=5)
    try:
        tables = await conn.fetch(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = $1", role
        )
    finally:
        await conn.close()
    assert {t["tablename"] for t in tables} == {
        "probe_history_raw",
        "probe_history_hourly",
        "probe_history_daily",
        "probe_history_incidents",
    }
    assert {t["tableowner"] for t in tables} == {role}


async def _stored_results(dsn: str, source_prefix: str, check: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT hour, data FROM probe_history_raw WHERE source LIKE $1 AND check_name = $2",
            source_prefix + "%",
            check,
        )
    except asyncpg.UndefinedTableError:  # the agent has not made its tables yet
        return 0
    finally:
        await conn.close()
    return sum(len(decode_chunk(r["hour"], bytes(r["data"]))) for r in rows)


def _remembered(agent: Agent, check: str) -> int:
    writer = agent.history.writer
    assert writer is not None
    return sum(r.runs for r in writer.hours.get(check, {}).values())


@pytest.mark.timeout(60)
async def test_a_postgres_stopped_mid_run_loses_nothing_and_the_agent_keeps_serving(
    cluster: Cluster, tmp_path: Path
) -> None:
    name = f"fleet_{uuid.uuid4().hex[:6]}"
    await _admin(cluster, f"CREATE DATABASE {name}")
    dsn = cluster.dsn(db=name)
    async with listening() as port:
        path = tmp_path / "probe.yaml"
        path.write_text(agent_yaml(port, dsn).replace("shop-probe", name))
        agent = await start(path)
        base = f"http://127.0.0.1:{agent.port}"
        try:
            await until(lambda: _stored_results(dsn, name, "api"), timeout=10)
            before = await _stored_results(dsn, name, "api")

            cluster.stop()
            health, _, _ = await fetch(base + "/health")
            await until(lambda: _page_says(base, "history: "), timeout=10)
            seen_during = _remembered(agent, "api")
            await asyncio.sleep(2.5)  # results keep coming while the store is down
            status, _, _ = await fetch(base + "/status")
            assert agent.history.writer is not None
            assert not agent.history.writer.available
            _, metrics, _ = await fetch(base + "/metrics")

            cluster.start()
            await until(lambda: _writer_up(agent), timeout=40)
        finally:
            await agent.stop()
    remembered = _remembered(agent, "api")
    stored = await _stored_results(dsn, name, "api")
    assert health == 200 and status == 200
    assert "probe_history_up 0.0" in metrics
    assert remembered > seen_during >= before > 0
    assert stored == remembered  # what was written survived; what waited was written


async def _page_says(base: str, words: str) -> bool:
    _, page, _ = await fetch(base + "/status")
    return words in page


async def _writer_up(agent: Agent) -> bool:
    writer = agent.history.writer
    return writer is not None and writer.available and writer.pending() == 0
