"""PostgreSQL: run the user's query, then read every measure in one simple-query round trip.

Besides latency, connection use and replication lag, the deep measures
(docs/checks/postgres.md): uptime and the restarts the agent saw, the longest transaction,
the longest idle-in-transaction session, lock waiters, deadlocks and the rollback ratio
per window, XID wraparound, and replication slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import field_validator

from probe.checks import deep, postgres_pool
from probe.checks.errors import failure
from probe.contract import limits
from probe.contract.plugin import (
    Check,
    CheckConfig,
    CheckContext,
    CheckFailed,
    MetricFamily,
    MetricPoint,
    Report,
)
from probe.core.fields import Duration
from probe.core.model import Sample, Unit
from probe.core.networds import address, checked_port, is_timeout, network_words, split_host_port
from probe.core.redact import redact_url, url_secrets
from probe.core.units import format_duration

DEFAULT_PORT = 5432
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# Everything the check measures besides the user's query, in one statement sent as a
# simple query (COPY ... TO STDOUT): no prepared statement, no session state, so it works
# through PgBouncer and Supavisor in transaction mode, for any role. Sessions and locks are
# those of the check's own database; XID age and replication slots are the cluster's.
#
# - Only client backends count against max_connections (PG 10+ lists walwriter & co too).
#   A role outside pg_monitor sees other roles' sessions without their type: those with a
#   user and a database are counted as clients.
# - `hidden`: sessions of the database whose details this role may not read.
# - On a standby with nothing left to replay the lag is 0: the replay timestamp alone keeps
#   growing while the primary is idle.
# - Ages are returned raw (NULL when hidden) and clamped in Python: greatest() skips NULLs.
# - pg_locks and pg_replication_slots are readable by every role.
_DEEP_SQL = """
WITH a AS (
  SELECT pid, backend_type, state, xact_start, state_change, query_start, application_name
  FROM pg_stat_activity
  WHERE datname = current_database() AND pid <> pg_backend_pid()
), waiting AS (
  SELECT DISTINCT l.pid FROM pg_locks l JOIN a ON a.pid = l.pid WHERE NOT l.granted
), slots AS (
  SELECT slot_name, active,
    pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                         ELSE pg_current_wal_lsn() END, restart_lsn) AS retained
  FROM pg_replication_slots
)
SELECT row_to_json(deep)::text FROM (SELECT
  extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime,
  extract(epoch FROM pg_postmaster_start_time())::float8 AS started,
  pg_is_in_recovery() AS standby,
  CASE WHEN NOT pg_is_in_recovery() THEN NULL
       WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
       ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())
  END::float8 AS lag,
  current_setting('max_connections')::int AS max_connections,
  current_setting('superuser_reserved_connections')::int AS superuser_reserved,
  coalesce(current_setting('reserved_connections', true), '0')::int AS reserved,
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
     OR (backend_type IS NULL AND usesysid IS NOT NULL AND datid IS NOT NULL)) AS used,
  (SELECT count(*) FROM pg_stat_activity
     WHERE backend_type IS NULL AND usesysid IS NOT NULL AND datid IS NOT NULL)
    AS hidden_anywhere,
  (SELECT count(*) FROM a WHERE backend_type IS NULL) AS hidden,
  (SELECT json_build_object('pid', pid, 'app', left(application_name, 60), 'state', state,
       'age', extract(epoch FROM now() - xact_start)::float8)
     FROM a WHERE backend_type = 'client backend' AND xact_start IS NOT NULL
     ORDER BY xact_start LIMIT 1) AS longest,
  (SELECT json_build_object('pid', pid, 'app', left(application_name, 60),
       'age', extract(epoch FROM now() - state_change)::float8)
     FROM a WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
     ORDER BY state_change LIMIT 1) AS idle,
  (SELECT count(*) FROM waiting) AS waiters,
  (SELECT json_build_object('pid', w.pid, 'blockers', pg_blocking_pids(w.pid),
       'age', extract(epoch FROM now() - a.query_start)::float8)
     FROM waiting w JOIN a ON a.pid = w.pid
     ORDER BY a.query_start NULLS LAST, w.pid LIMIT 1) AS waiter,
  d.deadlocks, d.xact_commit AS commits, d.xact_rollback AS rollbacks,
  (SELECT json_build_object('db', datname, 'age', age(datfrozenxid))
     FROM pg_database ORDER BY age(datfrozenxid) DESC LIMIT 1) AS oldest_xid,
  (SELECT count(*) FROM slots) AS slots,
  (SELECT count(*) FROM slots WHERE NOT active) AS inactive_slots,
  (SELECT (array_agg(slot_name::text ORDER BY slot_name))[1:5]
     FROM slots WHERE NOT active) AS inactive_names,
  (SELECT max(retained) FROM slots)::float8 AS retained
  FROM pg_stat_database d WHERE d.datname = current_database()
) deep
"""

# The query `SELECT 1` proves nothing the statistics statement does not: it is skipped.
DEFAULT_QUERY = "SELECT 1"
XID_SPACE = 2**31  # transaction IDs a cluster may use before wraparound protection stops it
# Counters read each run; their increases over the window are per-window measures.
_COUNTERS = ("deadlocks", "commits", "rollbacks")
SESSION_MEASURES = ("longest_transaction", "idle_in_transaction")
DEEP_MEASURES = frozenset(
    {
        "uptime",
        "restarts",
        *SESSION_MEASURES,
        "lock_waiters",
        "deadlocks",
        "wraparound",
        "inactive_slots",
        "slot_retained_bytes",
        "rollback_ratio",
    }
)
# States that are bad on any server (the community's rules: Datadog, Netdata,
# awesome-prometheus-alerts); docs/checks/postgres.md says why each, and why the
# others have none. `uptime` has none: a server first seen young was just deployed.
DEFAULT_WARN = limits.defaults(
    {
        "restarts": 0,
        "connections": "80%",
        "longest_transaction": "5m",
        "idle_in_transaction": "1m",
        "lock_waiters": 5,
        "deadlocks": 0,
        "wraparound": "50%",
        "inactive_slots": 0,
        "rollback_ratio": "5%",
    }
)
DEFAULT_FAIL = limits.defaults(
    {
        "connections": "95%",
        "longest_transaction": "30m",
        "idle_in_transaction": "10m",
        "lock_waiters": 20,
        "wraparound": "75%",
    }
)

# measure -> the gauge it feeds, labelled by check.
_GAUGES: dict[str, MetricFamily] = {
    measure: MetricFamily(name, doc, ("check",))
    for measure, name, doc in (
        (
            "connections",
            "probe_postgres_connections_ratio",
            "Client connections as a share of the slots open to non-superusers.",
        ),
        (
            "replication_lag",
            "probe_postgres_replication_lag_seconds",
            "How far a standby's replay is behind (NaN on a primary).",
        ),
        ("uptime", "probe_postgres_uptime_seconds", "Time since the server started."),
        (
            "longest_transaction",
            "probe_postgres_longest_transaction_seconds",
            "Age of the oldest open transaction in the check's database.",
        ),
        (
            "idle_in_transaction",
            "probe_postgres_idle_in_transaction_seconds",
            "Longest time a session of the check's database has been idle in a transaction.",
        ),
        (
            "lock_waiters",
            "probe_postgres_lock_waiters",
            "Sessions of the check's database waiting for a lock.",
        ),
        (
            "deadlocks",
            "probe_postgres_window_deadlocks",
            "Deadlocks in the check's database over the check's window.",
        ),
        (
            "rollback_ratio",
            "probe_postgres_window_rollback_ratio",
            "Rolled-back share of the transactions over the check's window.",
        ),
        (
            "wraparound",
            "probe_postgres_wraparound_ratio",
            "Share of the 2^31 transaction ID space used by the oldest database.",
        ),
        (
            "inactive_slots",
            "probe_postgres_inactive_slots",
            "Replication slots no consumer is connected to.",
        ),
        (
            "slot_retained_bytes",
            "probe_postgres_slot_retained_bytes",
            "WAL kept on disk for the replication slot furthest behind.",
        ),
    )
}

# PostgresConnectionError is a PostgresError, but it means the socket, not the query.
_LOST_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
_DRIVER_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class _QueryFailed(CheckFailed):
    """The configured query failed; the connection itself is fine."""


class _ConnectionLost(CheckFailed):
    """The connection died under a query; worth one fresh attempt."""


class PostgresConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = (
        CheckConfig.measures | {"connections", "replication_lag"} | DEEP_MEASURES
    )
    metric_families: ClassVar[tuple[MetricFamily, ...]] = tuple(_GAUGES.values())
    secret_fields: ClassVar[frozenset[str]] = frozenset({"dsn"})
    default_warn: ClassVar[limits.LimitMap] = DEFAULT_WARN
    default_fail: ClassVar[limits.LimitMap] = DEFAULT_FAIL

    type: Literal["postgres"]
    dsn: str
    query: str = "SELECT 1"
    # How long one observed restart keeps `restarts` at 1 or more (and warning).
    restart_window: Duration = 900.0

    @field_validator("dsn")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        parts = urlsplit(value)
        example = "postgresql://user:password@host:5432/db"
        if parts.scheme not in ("postgres", "postgresql") or not value.startswith(
            f"{parts.scheme}://"
        ):
            raise ValueError(f"expected a URL like {example}, got {redact_url(value)!r}")
        if parts.netloc.count("@") > 1:
            # asyncpg splits at the first `@` and would dial part of the password.
            raise ValueError("the user or password contains '@'; write it as %40")
        # asyncpg checks these only when connecting, and fails every run with its own words.
        hosts = parts.netloc.rpartition("@")[2]
        ports = [split_host_port(host)[1] for host in hosts.split(",")]
        options = parse_qsl(parts.query)
        ports += [port for name, text in options if name == "port" for port in text.split(",")]
        for port in ports:
            if port:
                checked_port(port, value)
        for name, mode in options:
            if name == "sslmode" and mode not in SSL_MODES:
                raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}, got {mode!r}")
        return value

    def metric_points(self) -> Iterable[MetricPoint]:
        labels = (self.name,)  # one tuple for all the check's series: they live as long as it
        for measure, family in _GAUGES.items():
            yield MetricPoint(family, labels, "", measure)

    def target(self) -> str:
        return redact_url(self.dsn)

    def secrets(self) -> list[str]:
        return url_secrets(self.dsn)

    def host_and_address(self) -> tuple[str, str]:
        """(host, host:port) for error words; multi-host DSNs show their host list."""
        hosts = urlsplit(self.dsn).netloc.rpartition("@")[2] or "localhost"
        if "," in hosts or hosts.startswith("[") or hosts.count(":") > 1:
            return hosts, hosts
        host, _, port = hosts.partition(":")
        return host, address(host, int(port) if port.isdigit() else DEFAULT_PORT)


# The pool a check holds, its key and the loop it belongs to.
_Held = tuple[postgres_pool.SharedPool, postgres_pool.PoolKey, asyncio.AbstractEventLoop]


class PostgresCheck(Check[PostgresConfig]):
    config_model = PostgresConfig

    def __init__(self, config: PostgresConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        # The shared pool this check holds (postgres_pool), from its first run to close.
        self._shared: _Held | None = None
        # Releases waiting for a cancelled statement; made on first use (an empty set is
        # 216 bytes a check, and most checks never time out).
        self._releasing: set[asyncio.Future[None]] | None = None
        self._counters = deep.CounterWindow(config.window)
        self._restarts = deep.RestartWatch(config.restart_window)

    async def run(self) -> Report:
        pool = await self._get_pool()
        try:
            stats = await self._attempt(pool)
        except _ConnectionLost:
            # A pooled connection the server dropped while idle (restart, failover, a
            # pooler's idle timeout) fails on first use. One fresh attempt tells a stale
            # socket from a dead server, and gives the words for the latter.
            stats = await self._attempt(pool)
        counters = {name: float(stats.get(name) or 0) for name in _COUNTERS}
        increases = self._counters.add(self.context.clock(), counters)
        window = _Window(increases, self._counters.span())
        samples = _samples(stats, window)
        uptime = max(stats["uptime"], 0.0)
        samples.append(self._restarts.sample(self.context.clock(), stats["started"], uptime))
        return Report(samples=samples)

    async def _attempt(self, pool: asyncpg.Pool) -> dict[str, Any]:
        try:
            conn = await pool.acquire(timeout=self.config.timeout)
        except _DRIVER_ERRORS as exc:
            raise failure(exc, self._words(exc)) from None
        try:
            stats = await self._measure(conn)
        except (TimeoutError, asyncio.CancelledError):
            # asyncpg has asked the server to cancel the statement (its own timeout, or the
            # run's deadline cancelled the call). Terminating now would kill that request
            # and leave the statement running server-side, one more per run. Releasing
            # waits for the cancel to be acknowledged, so it happens after the run ends.
            self._release_later(pool, conn)
            raise
        except _QueryFailed:
            await pool.release(conn, timeout=self.config.timeout)
            raise
        except BaseException:
            # The socket died under the query: resetting would wait on it. The pool makes
            # a new connection; when the socket died, asyncpg has already handed it back.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            await pool.release(conn, timeout=self.config.timeout)
            raise
        await pool.release(conn, timeout=self.config.timeout)
        return stats

    def _release_later(self, pool: asyncpg.Pool, conn: PoolConnectionProxy) -> None:
        task = asyncio.ensure_future(self._release_quietly(pool, conn))
        if self._releasing is None:
            self._releasing = set()
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release_quietly(self, pool: asyncpg.Pool, conn: PoolConnectionProxy) -> None:
        # A failed release terminates the connection itself; the run already failed.
        with contextlib.suppress(TimeoutError, *_DRIVER_ERRORS):
            await pool.release(conn, timeout=self.config.timeout)

    async def _measure(self, conn: PoolConnectionProxy) -> dict[str, Any]:
        if _normal(self.config.query) != DEFAULT_QUERY:
            await self._simple(conn.execute(self.config.query), "query failed")
        chunks: list[bytes] = []

        async def collect(chunk: bytes) -> None:
            chunks.append(chunk)

        # COPY's rows come back on the simple-query protocol: one message out, one reply.
        copying = conn.copy_from_query(_DEEP_SQL, output=collect, format="csv")
        await self._simple(copying, "reading the server's statistics failed")
        return _parse_copy(b"".join(chunks))

    async def _simple(self, call: Awaitable[object], what: str) -> None:
        try:
            await call
        except _LOST_ERRORS as exc:
            if is_timeout(exc):
                raise TimeoutError() from None
            raise _ConnectionLost(self._words(exc) or "connection lost") from None
        except asyncpg.PostgresError as exc:
            raise _QueryFailed(f"{what}: {exc.message}") from None
        except _DRIVER_ERRORS as exc:
            raise failure(exc, self._words(exc)) from None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._shared is None:
            config = self.config
            key = (config.dsn, config.timeout, _normal(config.query))
            pool = postgres_pool.POOLS.acquire(key)
            self._shared = (pool, key, asyncio.get_running_loop())
        return await self._shared[0].get()

    def _words(self, exc: BaseException) -> str | None:
        host, where = self.config.host_and_address()
        if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
            # `the database system is starting up` has words; a dropped socket has a cause.
            words = network_words(exc, host, where) or getattr(exc, "message", None)
            return str(words) if words else f"connection closed by server ({where})"
        if isinstance(exc, asyncpg.PostgresError):
            # The server's own words: `password authentication failed for user "app"`,
            # `database "x" does not exist`. They never quote the password.
            return str(exc.message)
        return network_words(exc, host, where)

    async def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        if self._releasing:
            # Lets a cancel in flight reach the server before the pool may go away.
            await asyncio.wait(self._releasing, timeout=self.config.timeout)
        _, key, loop = shared
        await postgres_pool.POOLS.release(key, loop)


def _normal(query: str) -> str:
    """The query as the check runs it: `SELECT 1` (skipped) whatever its spelling."""
    if query.strip().rstrip(";").strip().upper() == DEFAULT_QUERY:
        return DEFAULT_QUERY
    return query


def _parse_copy(data: bytes) -> dict[str, Any]:
    """The one CSV row of one JSON column that `_DEEP_SQL` copies out."""
    rows = list(csv.reader(io.StringIO(data.decode())))
    if len(rows) != 1 or len(rows[0]) != 1:
        # pg_stat_database has no row for the database (a pooler's own fake database).
        raise CheckFailed("the server has no statistics for this database")
    stats: dict[str, Any] = json.loads(rows[0][0])
    return stats


@dataclass(frozen=True, slots=True)
class _Window:
    """Counter increases over the check's window (None on the first run) and its span."""

    increases: dict[str, float] | None
    span: float


def _samples(stats: dict[str, Any], window: _Window) -> list[Sample]:
    """Every measure of one run but `restarts`, which needs the runs before it."""
    samples = [_connections(stats)]
    if stats["standby"]:
        note = "" if stats["lag"] is not None else "no transaction replayed yet"
        samples.append(Sample("replication_lag", stats["lag"], Unit.SECONDS, note=note))
    samples.append(Sample("uptime", max(stats["uptime"], 0.0), Unit.SECONDS))
    hidden = int(stats["hidden"])
    for measure, found in zip(SESSION_MEASURES, (stats["longest"], stats["idle"]), strict=True):
        samples.append(_session(measure, found, hidden))
    samples.append(_lock_waiters(stats))
    samples += _per_window(window)
    samples += _cluster(stats)
    return samples


def _connections(stats: dict[str, Any]) -> Sample:
    # Non-superusers (the app) are locked out once the reserved slots are all that is left.
    total = int(stats["max_connections"])
    reserved = int(stats["superuser_reserved"]) + int(stats["reserved"])
    slots = total - reserved if total > reserved else total
    used = int(stats["used"])
    note = f"{used} of {slots} (max_connections {total} less {reserved} reserved)"
    if stats["hidden_anywhere"]:
        note += "; other roles' sessions are counted without their type (grant pg_monitor)"
    return Sample("connections", used / slots if slots else None, Unit.RATIO, note=note)


def _session(measure: str, found: dict[str, Any] | None, hidden: int) -> Sample:
    """The longest open transaction or idle-in-transaction session, with who it is."""
    if found is None or found["age"] is None:
        if hidden:
            return Sample(
                measure, None, Unit.SECONDS, note=_hidden_words(hidden), unknown_warns=True
            )
        return Sample(measure, 0.0, Unit.SECONDS)
    words = [f"pid {found['pid']}"]
    if found.get("app"):
        words.append(f"app {json.dumps(found['app'])}")
    if found.get("state"):
        words.append(f"state {json.dumps(found['state'])}")
    if hidden:
        # What is visible is a lower bound: a limit it breaches is breached.
        words.append(f"at least: {_hidden_words(hidden)}")
    return Sample(
        measure, max(found["age"], 0.0), Unit.SECONDS, note=", ".join(words), note_explains=True
    )


def _hidden_words(count: int) -> str:
    sessions = (
        "1 session of another role is" if count == 1 else f"{count} sessions of other roles are"
    )
    return f"{sessions} hidden from this role (grant it pg_monitor)"


def _lock_waiters(stats: dict[str, Any]) -> Sample:
    count, waiter = int(stats["waiters"]), stats["waiter"]
    if not count or waiter is None:
        return Sample("lock_waiters", count, Unit.COUNT)
    words = f"pid {waiter['pid']}"
    if waiter["age"] is not None:
        words = f"longest {format_duration(max(waiter['age'], 0.0))}: {words}"
    blockers = waiter.get("blockers") or []
    if blockers:
        shown = ", ".join(str(pid) for pid in blockers[:3])
        words += f" blocked by pid {shown}" + (" and more" if len(blockers) > 3 else "")
    return Sample("lock_waiters", count, Unit.COUNT, note=words, note_explains=True)


def _per_window(window: _Window) -> list[Sample]:
    if window.increases is None:
        return [
            Sample("deadlocks", None, Unit.COUNT, note=deep.FIRST_RUN),
            Sample("rollback_ratio", None, Unit.RATIO, note=deep.FIRST_RUN),
        ]
    span = f"in the last {format_duration(window.span)}"
    deadlocks = window.increases["deadlocks"]
    rollbacks = window.increases["rollbacks"]
    finished = window.increases["commits"] + rollbacks
    if finished:
        ratio = Sample(
            "rollback_ratio",
            rollbacks / finished,
            Unit.RATIO,
            note=f"{rollbacks:,.0f} of {finished:,.0f} transactions {span}",
        )
    else:
        ratio = Sample("rollback_ratio", None, Unit.RATIO, note=f"no transactions {span}")
    return [Sample("deadlocks", deadlocks, Unit.COUNT, note=span), ratio]


def _cluster(stats: dict[str, Any]) -> list[Sample]:
    """XID wraparound and replication slots: facts of the whole cluster."""
    oldest = stats["oldest_xid"]
    samples = [
        Sample(
            "wraparound",
            oldest["age"] / XID_SPACE,
            Unit.RATIO,
            note=f'database "{oldest["db"]}" is {oldest["age"]:,} transactions old',
        )
    ]
    slots, inactive = int(stats["slots"]), int(stats["inactive_slots"])
    names = ", ".join(stats["inactive_names"] or [])
    if inactive > len(stats["inactive_names"] or []):
        names += " and more"
    samples.append(Sample("inactive_slots", inactive, Unit.COUNT, note=names, note_explains=True))
    if not slots:
        samples.append(Sample("slot_retained_bytes", 0.0, Unit.BYTES, note="no replication slots"))
    else:
        retained = stats["retained"]
        note = "" if retained is not None else "no slot has reserved WAL yet"
        samples.append(
            Sample("slot_retained_bytes", retained, Unit.BYTES, note=note, note_explains=True)
        )
    return samples
