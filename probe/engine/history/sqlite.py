"""SQLite backend: stdlib `sqlite3` in WAL mode, on one thread of its own.

Every call runs on a single-thread executor that owns the connection, so the event loop
never waits on the disk and the connection is only ever used from the thread that made
it. A file that is not a database (or fails `quick_check`) is moved aside with one
warning and a fresh one started: history is worth less than a running agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from probe.engine.history.codec import decode_day
from probe.engine.history.model import Incident, Rollup
from probe.engine.history.retention import Cutoffs
from probe.engine.history.rollup import combine
from probe.engine.history.store import Batch, ChunkKey, HistoryError, Snapshot

log = logging.getLogger("probe.history")

T = TypeVar("T")

# Layout 2 (issue 28): each (source, check) is a small integer in `series`, so the many
# rows of raw results and rollups carry 1-2 bytes of key instead of two names, and every
# key starts with the time: new rows go in at the end of each table, pruning takes whole
# pages off its start (freed to the file system) instead of leaving holes in every
# check's range, and the newest incidents are read off the end of their table without an
# index of their own. `series` has no index on the names either: the backend keeps them
# in memory and is the file's only writer. One row per check and day holds the day's
# total and, for the 90 days of hourly retention, its hours (`hours`, then NULL): the
# previous release kept them in two tables (`hourly`, `daily`), each with its own key.
SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, check_name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raw (
    hour INTEGER NOT NULL, series INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (hour, series)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS days (
    day INTEGER NOT NULL, series INTEGER NOT NULL, hours BLOB,
    passed INTEGER, warned INTEGER, failed INTEGER, up_ms INTEGER, known_ms INTEGER,
    p50_us INTEGER, p95_us INTEGER,
    PRIMARY KEY (day, series)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents (
    start REAL NOT NULL, source TEXT NOT NULL, check_name TEXT NOT NULL,
    component TEXT NOT NULL, measure TEXT NOT NULL, severity TEXT NOT NULL,
    summary TEXT NOT NULL, end_ts REAL,
    PRIMARY KEY (start, source, check_name, component, measure)) WITHOUT ROWID;
"""

# What readers see, whichever layout the file has: names, not series numbers. Temporary
# views live in the connection, so `probe history` reading a file of the previous release
# (layout 1: names in every row) changes nothing in it.
VIEWS = """
CREATE TEMP VIEW raw_named AS
    SELECT s.source, s.check_name, r.hour, r.data FROM raw r JOIN series s ON s.id = r.series;
CREATE TEMP VIEW hourly_named AS
    SELECT s.source, s.check_name, d.day, d.hours AS data FROM days d
    JOIN series s ON s.id = d.series WHERE d.hours IS NOT NULL;
CREATE TEMP VIEW daily_named AS
    SELECT s.source, s.check_name, d.day, d.passed, d.warned, d.failed, d.up_ms, d.known_ms,
        d.p50_us, d.p95_us FROM days d JOIN series s ON s.id = d.series
    WHERE d.passed IS NOT NULL;
"""
VIEWS_OF_LAYOUT_1 = """
CREATE TEMP VIEW raw_named AS SELECT source, check_name, hour, data FROM raw;
CREATE TEMP VIEW hourly_named AS SELECT source, check_name, day, data FROM hourly;
CREATE TEMP VIEW daily_named AS
    SELECT source, check_name, day, passed, warned, failed, up_ms, known_ms, p50_us, p95_us
    FROM daily;
"""

# Layout 1 to 2, in one transaction: a failure leaves the file as it was.
MIGRATE = [
    "ALTER TABLE raw RENAME TO raw_layout1",
    "ALTER TABLE hourly RENAME TO hourly_layout1",
    "ALTER TABLE daily RENAME TO daily_layout1",
    "DROP INDEX IF EXISTS incidents_by_start",
    "ALTER TABLE incidents RENAME TO incidents_layout1",
    *(statement for statement in SCHEMA.split(";") if statement.strip()),
    "INSERT INTO series (source, check_name) SELECT source, check_name FROM "
    "raw_layout1 UNION SELECT source, check_name FROM hourly_layout1 UNION "
    "SELECT source, check_name FROM daily_layout1 ORDER BY 1, 2",
    "INSERT INTO raw SELECT o.hour, s.id, o.data FROM raw_layout1 o JOIN series s "
    "ON s.source = o.source AND s.check_name = o.check_name",
    "INSERT INTO days SELECT o.day, s.id, NULL, o.passed, o.warned, o.failed, o.up_ms, "
    "o.known_ms, o.p50_us, o.p95_us FROM daily_layout1 o JOIN series s "
    "ON s.source = o.source AND s.check_name = o.check_name",
    # `WHERE true`: SQLite's grammar needs it between a SELECT and an upsert clause.
    "INSERT INTO days (day, series, hours) SELECT o.day, s.id, o.data FROM hourly_layout1 o "
    "JOIN series s ON s.source = o.source AND s.check_name = o.check_name WHERE true "
    "ON CONFLICT (day, series) DO UPDATE SET hours = excluded.hours",
    "INSERT INTO incidents SELECT start, source, check_name, component, measure, severity, "
    "summary, end_ts FROM incidents_layout1",
    "DROP TABLE incidents_layout1",
    "DROP TABLE raw_layout1",
    "DROP TABLE hourly_layout1",
    "DROP TABLE daily_layout1",
]


def _layout(db: sqlite3.Connection) -> int:
    """1 for a file of the previous release (names in every row), 2 otherwise (a new file
    too)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(raw)")}
    return 1 if "source" in columns else 2


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Layout 1 to 2 in one transaction, keeping every row; the blobs are read as they
    are (codec.py reads both formats) and shrink as retention replaces them."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if _layout(db) == 1:  # another process may have migrated it while we waited
            for statement in MIGRATE:
                db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise
    _give_back_free_pages(db)  # the old tables' pages
    log.info("history file %s moved to the compact layout (2)", path)


def _totals(batch: Batch) -> dict[tuple[str, int], Rollup]:
    """Each day's total; the writer sends one with every day of hours, but a batch made
    otherwise still gets its totals right."""
    totals = dict(batch.daily)
    for key, blob in batch.days.items():
        if key not in totals:
            totals[key] = combine(decode_day(blob).values())
    return totals


def _give_back_free_pages(db: sqlite3.Connection) -> None:
    """`incremental_vacuum` frees one page per step of the statement, and `execute` steps
    once: the previous release gave back one page an hour. `executescript` runs it out."""
    db.executescript("PRAGMA incremental_vacuum;")


def _series_id(db: sqlite3.Connection, source: str, check: str) -> int:
    """A check the backend has not seen in the file: inside the write transaction (BEGIN
    IMMEDIATE), so nobody adds it between the look and the insert."""
    row = db.execute(
        "SELECT id FROM series WHERE source = ? AND check_name = ?", (source, check)
    ).fetchone()
    if row is not None:
        return int(row[0])
    added = db.execute("INSERT INTO series (source, check_name) VALUES (?, ?)", (source, check))
    assert added.lastrowid is not None  # always set after an INSERT into a rowid table
    return added.lastrowid


_CORRUPT = ("file is not a database", "malformed", "corrupt")


def words(exc: BaseException, path: Path) -> str:
    """sqlite3's messages are already plain; add where, and say what to do."""
    text = str(exc)
    if _read_only_fs(path):
        return f"{path} is on a read-only file system"
    if isinstance(exc, sqlite3.OperationalError):
        if "readonly" in text or "read-only" in text:
            return f"{path} is read-only"
        if "unable to open" in text:
            return f"cannot open {path} (does its directory exist and is it writable?)"
        if "disk is full" in text or "disk I/O" in text:
            return f"disk full or failing at {path}: {text}"
    if isinstance(exc, OSError):
        return f"{path}: {exc.strerror or exc}"
    return f"{path}: {text}"


def _rollback(db: sqlite3.Connection) -> None:
    # SQLite rolls back by itself on some errors (a full disk): a second ROLLBACK would
    # replace the error that says what happened with "no transaction is active".
    if db.in_transaction:
        db.execute("ROLLBACK")


def _read_only_fs(path: Path) -> bool:
    for candidate in [path.parent, *path.parent.parents]:
        if candidate.exists():
            return bool(os.statvfs(candidate).f_flag & os.ST_RDONLY)
    return False


class SqliteBackend:
    def __init__(self, path: Path, repair: bool = True) -> None:
        self.path = path
        self.repair = repair  # `probe history` only reads: it must never move a file
        self.description = f"sqlite://{path}"
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="probe-history")
        self._db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self._series: dict[tuple[str, str], int] = {}  # (source, check) -> series, as committed
        self._hours_pruned_before = 0  # every day before this has lost its hours

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(words(exc, self.path)) from exc

    # ------------------------------------------------------------ opening

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            if not self.repair or not any(marker in str(exc) for marker in _CORRUPT):
                raise
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                found = Path(f"{self.path}{suffix}")
                if found.exists():
                    found.rename(Path(f"{aside}{suffix}"))
            log.warning(
                "history file %s is not a usable database (%s); moved it to %s and started "
                "a fresh one",
                self.path,
                exc,
                aside,
            )
            self._db = self._connect()

    def _remember_file(self) -> None:
        found = os.stat(self.path)
        self._identity = (found.st_dev, found.st_ino)

    async def reopened(self) -> bool:
        """True when the file was removed or replaced since it was opened, and has been
        opened afresh: everything written before is gone, and the caller writes again
        what it still holds. SQLite would otherwise go on writing to the unlinked inode,
        and every row would vanish at the next start."""
        return await self._run(self._reopen_if_replaced)

    def _reopen_if_replaced(self) -> bool:
        if self._db is None or self._identity is None:
            return False
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            what = "was removed; starting a new one"
        else:
            if (found.st_dev, found.st_ino) == self._identity:
                return False
            what = "was replaced by another file; opening that one"
        log.warning(
            "history file %s %s and writing again what memory still holds",
            self.path,
            what,
            extra={"history": self.description},
        )
        # Closing first: the old connection checkpoints into its own (unlinked) file and
        # deletes its WAL, which must not be replayed into the new one.
        self._db.close()
        self._db = None
        self._identity = None
        self._open()
        return True

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # auto_vacuum only takes effect on a new file, before the first table.
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA busy_timeout = 2000")
            db.execute("PRAGMA journal_size_limit = 4194304")
            result = db.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {result}")
            self._series = {}
            self._hours_pruned_before = 0
            if _layout(db) == 1 and not self.repair:
                db.executescript(VIEWS_OF_LAYOUT_1)  # `probe history`: read as it is
            else:
                if _layout(db) == 1:
                    _migrate(db, self.path)
                db.executescript(SCHEMA)
                db.executescript(VIEWS)
                self._series = {
                    (source, check): series
                    for series, source, check in db.execute(
                        "SELECT id, source, check_name FROM series"
                    )
                }
            self._remember_file()
        except BaseException:
            db.close()
            raise
        return db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._open()
        assert self._db is not None
        return self._db

    # ------------------------------------------------------------ writing

    async def write(self, batch: Batch) -> None:
        await self._run(lambda: self._write(batch))

    def _write(self, batch: Batch) -> None:
        db = self._conn()
        src = batch.source
        added: dict[tuple[str, str], int] = {}

        def series(check: str) -> int:
            key = (src, check)
            found = self._series.get(key) or added.get(key)
            if found is None:
                found = added[key] = _series_id(db, src, check)
            return found

        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO raw VALUES (?, ?, ?)",
                [(h, series(c), blob) for (c, h), blob in batch.chunks.items()],
            )
            db.executemany(
                "INSERT INTO days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (day, series) DO UPDATE SET hours = coalesce(excluded.hours, "
                "hours), passed = excluded.passed, warned = excluded.warned, "
                "failed = excluded.failed, up_ms = excluded.up_ms, known_ms = excluded.known_ms, "
                "p50_us = excluded.p50_us, p95_us = excluded.p95_us",
                [
                    (day, series(check), batch.days.get((check, day)), *total.as_tuple())
                    for (check, day), total in _totals(batch).items()
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (i.start, src, i.check, i.component, i.measure, i.severity, i.summary, i.end)
                    for i in batch.incidents
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        # Only now: a series added by a transaction that rolled back does not exist.
        self._series.update(added)

    # ------------------------------------------------------------ reading

    async def read_chunks(self, source: str, keys: list[ChunkKey]) -> dict[ChunkKey, bytes]:
        def read() -> dict[ChunkKey, bytes]:
            db = self._conn()
            found: dict[ChunkKey, bytes] = {}
            for check, hour in keys:
                series = self._series.get((source, check))
                if series is not None:  # a lookup by key: `series` has no index on names
                    row = db.execute(
                        "SELECT data FROM raw WHERE hour = ? AND series = ?", (hour, series)
                    ).fetchone()
                else:  # a new check, or a file of layout 1 read as it is
                    row = db.execute(
                        "SELECT data FROM raw_named WHERE source = ? AND check_name = ? "
                        "AND hour = ?",
                        (source, check, hour),
                    ).fetchone()
                if row is not None:
                    found[(check, hour)] = bytes(row[0])
            return found

        return await self._run(read)

    async def load(self, hourly_since: int, daily_since: int, incidents: int) -> Snapshot:
        def read() -> Snapshot:
            db = self._conn()
            days = db.execute(
                "SELECT source, check_name, day, data FROM hourly_named WHERE day >= ?",
                (hourly_since,),
            ).fetchall()
            daily = db.execute(
                "SELECT source, check_name, day, passed, warned, failed, up_ms, known_ms, "
                "p50_us, p95_us FROM daily_named WHERE day >= ?",
                (daily_since,),
            ).fetchall()
            found = db.execute(
                "SELECT source, check_name, component, measure, severity, summary, start, end_ts "
                "FROM incidents ORDER BY start DESC LIMIT ?",
                (incidents,),
            ).fetchall()
            return Snapshot(
                days=[(s, c, d, bytes(b)) for s, c, d, b in days],
                daily=[(r[0], r[1], r[2], Rollup(*r[3:])) for r in daily],
                incidents=[
                    Incident(r[1], r[2], r[3], r[4], r[5], r[6], r[7], source=r[0]) for r in found
                ],
            )

        return await self._run(read)

    async def prune(self, cutoffs: Cutoffs) -> None:
        def prune() -> None:
            db = self._conn()
            db.execute("BEGIN")
            try:
                db.execute("DELETE FROM raw WHERE hour < ?", (cutoffs.raw_hour,))
                # Past the hourly retention a day keeps its total only. Days before the
                # last cutoff were done then: no scan of 400 days every hour.
                db.execute(
                    "UPDATE days SET hours = NULL WHERE day >= ? AND day < ? AND hours IS NOT NULL",
                    (self._hours_pruned_before, cutoffs.hourly_day),
                )
                db.execute("DELETE FROM days WHERE day < ?", (cutoffs.daily_day,))
                db.execute("DELETE FROM incidents WHERE start < ?", (cutoffs.incidents,))
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            self._hours_pruned_before = cutoffs.hourly_day
            # Hand freed pages back to the file system, so the file's size stays bounded.
            _give_back_free_pages(db)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._run(prune)

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await self._run(close)
        finally:
            self._executor.shutdown(wait=True)
