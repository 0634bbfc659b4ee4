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

from probe.engine.history.model import Incident, Rollup
from probe.engine.history.retention import Cutoffs
from probe.engine.history.store import Batch, ChunkKey, HistoryError, Snapshot

log = logging.getLogger("probe.history")

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw (
    source TEXT NOT NULL, check_name TEXT NOT NULL, hour INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (source, check_name, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly (
    source TEXT NOT NULL, check_name TEXT NOT NULL, day INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (source, check_name, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily (
    source TEXT NOT NULL, check_name TEXT NOT NULL, day INTEGER NOT NULL,
    passed INTEGER, warned INTEGER, failed INTEGER, up_ms INTEGER, known_ms INTEGER,
    p50_us INTEGER, p95_us INTEGER,
    PRIMARY KEY (source, check_name, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents (
    source TEXT NOT NULL, check_name TEXT NOT NULL, component TEXT NOT NULL,
    measure TEXT NOT NULL, start REAL NOT NULL, severity TEXT NOT NULL, summary TEXT NOT NULL,
    end_ts REAL,
    PRIMARY KEY (source, check_name, component, measure, start));
CREATE INDEX IF NOT EXISTS incidents_by_start ON incidents (start);
"""

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
            db.executescript(SCHEMA)
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
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO raw VALUES (?, ?, ?, ?)",
                [(src, c, h, blob) for (c, h), blob in batch.chunks.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO hourly VALUES (?, ?, ?, ?)",
                [(src, c, d, blob) for (c, d), blob in batch.days.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(src, c, d, *r.as_tuple()) for (c, d), r in batch.daily.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (src, i.check, i.component, i.measure, i.start, i.severity, i.summary, i.end)
                    for i in batch.incidents
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    # ------------------------------------------------------------ reading

    async def read_chunks(self, source: str, keys: list[ChunkKey]) -> dict[ChunkKey, bytes]:
        def read() -> dict[ChunkKey, bytes]:
            db = self._conn()
            found: dict[ChunkKey, bytes] = {}
            for check, hour in keys:
                row = db.execute(
                    "SELECT data FROM raw WHERE source = ? AND check_name = ? AND hour = ?",
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
                "SELECT source, check_name, day, data FROM hourly WHERE day >= ?", (hourly_since,)
            ).fetchall()
            daily = db.execute(
                "SELECT source, check_name, day, passed, warned, failed, up_ms, known_ms, "
                "p50_us, p95_us FROM daily WHERE day >= ?",
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
                db.execute("DELETE FROM hourly WHERE day < ?", (cutoffs.hourly_day,))
                db.execute("DELETE FROM daily WHERE day < ?", (cutoffs.daily_day,))
                db.execute("DELETE FROM incidents WHERE start < ?", (cutoffs.incidents,))
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            # Hand freed pages back to the file system, so the file's size stays bounded.
            db.execute("PRAGMA incremental_vacuum")
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
