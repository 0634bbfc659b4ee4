"""PostgreSQL backend (asyncpg), for fleets: replicas share one history and one page.

Tables are `probe_history_*` in the role's current schema, created on start with
`CREATE TABLE IF NOT EXISTS` under an advisory lock (replicas start together): no
superuser, no CREATE SCHEMA, only CREATE on the schema the DSN's role already uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from probe.engine.history.model import Incident, Rollup
from probe.engine.history.retention import Cutoffs
from probe.engine.history.store import Batch, ChunkKey, HistoryError, Snapshot, describe
from probe.engine.postgres_words import postgres_words

T = TypeVar("T")

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 8.0
_LOCK = 0x70726F6265  # "probe": serialises table creation between replicas

SCHEMA = """
CREATE TABLE IF NOT EXISTS probe_history_raw (
    source text NOT NULL, check_name text NOT NULL, hour bigint NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (source, check_name, hour));
CREATE TABLE IF NOT EXISTS probe_history_hourly (
    source text NOT NULL, check_name text NOT NULL, day bigint NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (source, check_name, day));
CREATE TABLE IF NOT EXISTS probe_history_daily (
    source text NOT NULL, check_name text NOT NULL, day bigint NOT NULL,
    passed bigint, warned bigint, failed bigint, up_ms bigint, known_ms bigint,
    p50_us bigint, p95_us bigint,
    PRIMARY KEY (source, check_name, day));
CREATE TABLE IF NOT EXISTS probe_history_incidents (
    source text NOT NULL, check_name text NOT NULL, component text NOT NULL,
    measure text NOT NULL, start double precision NOT NULL, severity text NOT NULL,
    summary text NOT NULL, end_ts double precision,
    PRIMARY KEY (source, check_name, component, measure, start));
CREATE INDEX IF NOT EXISTS probe_history_incidents_by_start ON probe_history_incidents (start);
"""


class PostgresBackend:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.description = describe(dsn)
        parts = urlsplit(dsn)
        self._host = parts.hostname or "localhost"
        self._where = f"{self._host}:{parts.port or 5432}"
        self._pool: Any = None

    def _words(self, exc: BaseException) -> str:
        return postgres_words(exc, self._host, self._where)

    async def _run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        try:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,
                    max_size=2,
                    timeout=CONNECT_TIMEOUT,
                    command_timeout=COMMAND_TIMEOUT,
                    server_settings={"application_name": "probe-history"},
                )
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                return await fn(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise HistoryError(self._words(exc)) from exc

    async def open(self) -> None:
        async def create(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                await conn.execute(SCHEMA)

        await self._run(create)

    async def write(self, batch: Batch) -> None:
        src = batch.source

        async def write(conn: Any) -> None:
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO probe_history_raw VALUES ($1, $2, $3, $4) ON CONFLICT "
                    "(source, check_name, hour) DO UPDATE SET data = EXCLUDED.data",
                    [(src, c, h, blob) for (c, h), blob in batch.chunks.items()],
                )
                await conn.executemany(
                    "INSERT INTO probe_history_hourly VALUES ($1, $2, $3, $4) ON CONFLICT "
                    "(source, check_name, day) DO UPDATE SET data = EXCLUDED.data",
                    [(src, c, d, blob) for (c, d), blob in batch.days.items()],
                )
                await conn.executemany(
                    "INSERT INTO probe_history_daily VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                    "$9, $10) ON CONFLICT (source, check_name, day) DO UPDATE SET "
                    "passed = EXCLUDED.passed, warned = EXCLUDED.warned, "
                    "failed = EXCLUDED.failed, up_ms = EXCLUDED.up_ms, "
                    "known_ms = EXCLUDED.known_ms, p50_us = EXCLUDED.p50_us, "
                    "p95_us = EXCLUDED.p95_us",
                    [(src, c, d, *r.as_tuple()) for (c, d), r in batch.daily.items()],
                )
                await conn.executemany(
                    "INSERT INTO probe_history_incidents VALUES ($1, $2, $3, $4, $5, $6, $7, "
                    "$8) ON CONFLICT (source, check_name, component, measure, start) DO UPDATE "
                    "SET severity = EXCLUDED.severity, summary = EXCLUDED.summary, "
                    "end_ts = EXCLUDED.end_ts",
                    [
                        (
                            src,
                            i.check,
                            i.component,
                            i.measure,
                            i.start,
                            i.severity,
                            i.summary,
                            i.end,
                        )
                        for i in batch.incidents
                    ],
                )

        await self._run(write)

    async def reopened(self) -> bool:
        return False  # a server's tables are not files someone deletes under it

    async def read_chunks(self, source: str, keys: list[ChunkKey]) -> dict[ChunkKey, bytes]:
        if not keys:
            return {}

        async def read(conn: Any) -> dict[ChunkKey, bytes]:
            rows = await conn.fetch(
                "SELECT check_name, hour, data FROM probe_history_raw WHERE source = $1 "
                "AND (check_name, hour) IN (SELECT * FROM unnest($2::text[], $3::bigint[]))",
                source,
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
            return {(r["check_name"], r["hour"]): bytes(r["data"]) for r in rows}

        return await self._run(read)

    async def load(self, hourly_since: int, daily_since: int, incidents: int) -> Snapshot:
        async def read(conn: Any) -> Snapshot:
            days = await conn.fetch(
                "SELECT source, check_name, day, data FROM probe_history_hourly WHERE day >= $1",
                hourly_since,
            )
            daily = await conn.fetch(
                "SELECT source, check_name, day, passed, warned, failed, up_ms, known_ms, "
                "p50_us, p95_us FROM probe_history_daily WHERE day >= $1",
                daily_since,
            )
            found = await conn.fetch(
                "SELECT source, check_name, component, measure, severity, summary, start, "
                "end_ts FROM probe_history_incidents ORDER BY start DESC LIMIT $1",
                incidents,
            )
            return Snapshot(
                days=[(r[0], r[1], r[2], bytes(r[3])) for r in days],
                daily=[(r[0], r[1], r[2], Rollup(*r[3:])) for r in daily],
                incidents=[
                    Incident(r[1], r[2], r[3], r[4], r[5], r[6], r[7], source=r[0]) for r in found
                ],
            )

        return await self._run(read)

    async def prune(self, cutoffs: Cutoffs) -> None:
        async def prune(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(
                    "DELETE FROM probe_history_raw WHERE hour < $1", cutoffs.raw_hour
                )
                await conn.execute(
                    "DELETE FROM probe_history_hourly WHERE day < $1", cutoffs.hourly_day
                )
                await conn.execute(
                    "DELETE FROM probe_history_daily WHERE day < $1", cutoffs.daily_day
                )
                await conn.execute(
                    "DELETE FROM probe_history_incidents WHERE start < $1", cutoffs.incidents
                )

        await self._run(prune)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                pool.terminate()
