"""The lease as a row in PostgreSQL, made for transaction poolers (PgBouncer, Supavisor).

A pooler in transaction mode hands each transaction to any server connection, so
nothing here relies on a session: no advisory locks, no prepared statements kept
(`statement_cache_size=0`), no temporary tables, no `SET`. Every step is one statement,
and the row's own atomicity (`INSERT ... ON CONFLICT DO UPDATE ... WHERE`) elects: the
update happens only when the lease has expired on the server's clock or is ours.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from probe.core.redact import redact_url
from probe.engine.fleet.backend import BackendError
from probe.engine.fleet.plans import PLAN_KINDS
from probe.engine.postgres_words import postgres_words

LEASE_TABLE = "probe_fleet_lease"
RECORD_TABLE = "probe_fleet_alerts"
PLANS_TABLE = "probe_fleet_plans"  # run-time maintenance windows and incident notes

SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {LEASE_TABLE} (fleet text PRIMARY KEY, "
    "holder text NOT NULL, expires_at timestamptz NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {RECORD_TABLE} (fleet text NOT NULL, key text NOT NULL, "
    "entry text NOT NULL, PRIMARY KEY (fleet, key))",
    f"CREATE TABLE IF NOT EXISTS {PLANS_TABLE} (fleet text NOT NULL, kind text NOT NULL, "
    "id text NOT NULL, entry text NOT NULL, PRIMARY KEY (fleet, kind, id))",
)

# One statement: take or renew the lease, else say who holds it. The CTE's INSERT and the
# plain SELECT see the same snapshot, so the SELECT reports the holder that beat us.
ACQUIRE = f"""
WITH won AS (
    INSERT INTO {LEASE_TABLE} AS l (fleet, holder, expires_at)
    VALUES ($1, $2, now() + make_interval(secs => $3::float8))
    ON CONFLICT (fleet) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
    WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder
    RETURNING holder)
SELECT holder FROM won
UNION ALL
SELECT holder FROM {LEASE_TABLE}
WHERE fleet = $1 AND expires_at >= now() AND NOT EXISTS (SELECT 1 FROM won)
"""

LOAD_PLANS = f"SELECT kind, id, entry FROM {PLANS_TABLE} WHERE fleet = $1"

GET_PLAN = f"SELECT entry FROM {PLANS_TABLE} WHERE fleet = $1 AND kind = $2 AND id = $3"

# Not fenced: an admin write may land on any replica. The count is taken in the same
# snapshot, which does not see the row being written, hence the other rows plus one.
PUT_PLAN = f"""
WITH put AS (
    INSERT INTO {PLANS_TABLE} (fleet, kind, id, entry) VALUES ($1, $2, $3, $4)
    ON CONFLICT (fleet, kind, id) DO UPDATE SET entry = EXCLUDED.entry
    RETURNING 1)
SELECT count(*) + (SELECT count(*) FROM put)
FROM {PLANS_TABLE} WHERE fleet = $1 AND kind = $2 AND id <> $3
"""

DROP_PLANS = f"DELETE FROM {PLANS_TABLE} WHERE fleet = $1 AND kind = $2 AND id = ANY($3::text[])"

RELEASE = f"DELETE FROM {LEASE_TABLE} WHERE fleet = $1 AND holder = $2"

LOAD = f"SELECT key, entry FROM {RECORD_TABLE} WHERE fleet = $1"

# Fenced: rows are written only while the lease row says we hold it, on the server's clock.
WRITE = f"""
WITH written AS (
    INSERT INTO {RECORD_TABLE} (fleet, key, entry)
    SELECT $1, k, e FROM unnest($3::text[], $4::text[]) AS t(k, e)
    WHERE EXISTS (SELECT 1 FROM {LEASE_TABLE}
                  WHERE fleet = $1 AND holder = $2 AND expires_at > now())
    ON CONFLICT (fleet, key) DO UPDATE SET entry = EXCLUDED.entry
    RETURNING 1)
SELECT count(*) FROM written
"""

_DUPLICATE = (asyncpg.UniqueViolationError, asyncpg.DuplicateTableError)


class PostgresLease:
    def __init__(self, dsn: str, fleet: str, timeout: float) -> None:
        self.dsn = dsn
        self.fleet = fleet
        self.timeout = timeout
        parts = urlsplit(dsn)
        self._host = parts.hostname or "localhost"
        self._where = f"{self._host}:{parts.port or 5432}"
        self.description = redact_url(dsn)
        self._conn: Any = None
        self._created = False
        # One connection, used by the lease loop, the shared-plans loop and admin writes:
        # asyncpg runs one operation at a time on it.
        self._lock = asyncio.Lock()

    def _words(self, exc: BaseException) -> str:
        return postgres_words(exc, self._host, self._where)

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.dsn,
                timeout=self.timeout,
                command_timeout=self.timeout,
                statement_cache_size=0,  # a transaction pooler keeps no prepared statements
                server_settings={"application_name": "probe-fleet"},
            )
        if not self._created:
            for statement in SCHEMA:
                # Another replica may create it at the same moment.
                with contextlib.suppress(*_DUPLICATE):
                    await self._conn.execute(statement)
            self._created = True
        return self._conn

    async def _call(self, method: str, query: str, *args: Any) -> Any:
        async with self._lock:
            try:
                conn = await self._connection()
                return await getattr(conn, method)(query, *args, timeout=self.timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                await self._drop()
                raise BackendError(self._words(exc)) from exc

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # no goodbye over a link that just failed

    async def acquire(self, me: str, lease: float) -> str | None:
        holder = await self._call("fetchval", ACQUIRE, self.fleet, me, lease)
        return str(holder) if holder is not None else None

    async def release(self, me: str) -> None:
        await self._call("execute", RELEASE, self.fleet, me)

    async def load_record(self) -> dict[str, str]:
        rows = await self._call("fetch", LOAD, self.fleet)
        return {str(r["key"]): str(r["entry"]) for r in rows}

    async def write_record(self, me: str, entries: dict[str, str]) -> bool:
        if not entries:
            return True
        keys, values = list(entries), list(entries.values())
        written = await self._call("fetchval", WRITE, self.fleet, me, keys, values)
        return int(written) == len(entries)

    async def load_plans(self) -> dict[str, dict[str, str]]:
        rows = await self._call("fetch", LOAD_PLANS, self.fleet)
        found: dict[str, dict[str, str]] = {kind: {} for kind in PLAN_KINDS}
        for row in rows:
            if row["kind"] in found:
                found[row["kind"]][str(row["id"])] = str(row["entry"])
        return found

    async def get_plan(self, kind: str, id: str) -> str | None:
        found = await self._call("fetchval", GET_PLAN, self.fleet, kind, id)
        return None if found is None else str(found)

    async def put_plan(self, kind: str, id: str, entry: str) -> int:
        return int(await self._call("fetchval", PUT_PLAN, self.fleet, kind, id, entry))

    async def drop_plans(self, kind: str, ids: list[str]) -> None:
        if ids:
            await self._call("execute", DROP_PLANS, self.fleet, kind, ids)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close(timeout=self.timeout)
            except Exception:  # closing a broken link must not stop the agent's stop
                conn.terminate()
