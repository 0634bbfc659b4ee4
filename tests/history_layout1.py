"""A store as the previous release wrote it (layout 1, blob format 2), made from one this
release wrote: the upgrade tests open it and expect every figure unchanged.

The old schema and encoders are copied from that release (commit 9fef62b), not imported:
the store they describe is what users have on disk, whatever the code does now.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib
from array import array
from pathlib import Path

from probe.engine.history.codec import decode_chunk, decode_day
from probe.engine.history.model import Chunk, Rollup

SCHEMA_1 = """
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

_ROLLUP = struct.Struct("<B5I2I")


def _deltas(values: array[int]) -> array[int]:
    out, previous = array("i"), 0
    for value in values:
        out.append(value - previous)
        previous = value
    return out


def encode_chunk_2(chunk: Chunk) -> bytes:
    tenths = array("q", (t // 100 for t in chunk.ts_ms))
    rt = [r // 10 for r in chunk.rt_us]
    body = b"".join(
        (
            _deltas(tenths).tobytes(),
            array("B", chunk.status).tobytes(),
            array("H", (r & 0xFFFF for r in rt)).tobytes(),
            array("I", (r >> 16 for r in rt)).tobytes(),
            _deltas(chunk.weight_ms).tobytes(),
        )
    )
    return bytes([2]) + struct.pack("<I", len(chunk)) + zlib.compress(body, 6)


def encode_day_2(hours: dict[int, Rollup]) -> bytes:
    body = b"".join(
        _ROLLUP.pack(h, *r.as_tuple()[:5], r.p50_us // 10, r.p95_us // 10)
        for h, r in sorted(hours.items())
    )
    return bytes([2]) + zlib.compress(body, 6)


def to_layout1(path: Path) -> dict[str, int]:
    """Rewrites a store of this release as the previous one would have written it;
    returns the rows per table."""
    with sqlite3.connect(path, isolation_level=None) as db:
        raw = db.execute(
            "SELECT s.source, s.check_name, r.hour, r.data FROM raw r JOIN series s "
            "ON s.id = r.series"
        ).fetchall()
        hourly = db.execute(
            "SELECT s.source, s.check_name, d.day, d.hours FROM days d JOIN series s "
            "ON s.id = d.series WHERE d.hours IS NOT NULL"
        ).fetchall()
        daily = db.execute(
            "SELECT s.source, s.check_name, d.day, d.passed, d.warned, d.failed, d.up_ms, "
            "d.known_ms, d.p50_us, d.p95_us FROM days d JOIN series s ON s.id = d.series"
        ).fetchall()
        incidents = db.execute(
            "SELECT source, check_name, component, measure, start, severity, summary, end_ts "
            "FROM incidents"
        ).fetchall()
        db.executescript(
            "DROP TABLE raw; DROP TABLE days; DROP TABLE series; DROP TABLE incidents;"
        )
        db.executescript(SCHEMA_1)
        db.executemany(
            "INSERT INTO raw VALUES (?, ?, ?, ?)",
            [(s, c, h, encode_chunk_2(decode_chunk(h, blob))) for s, c, h, blob in raw],
        )
        db.executemany(
            "INSERT INTO hourly VALUES (?, ?, ?, ?)",
            [(s, c, d, encode_day_2(decode_day(blob))) for s, c, d, blob in hourly],
        )
        db.executemany("INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", daily)
        db.executemany("INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", incidents)
    return {
        "raw": len(raw),
        "hourly": len(hourly),
        "daily": len(daily),
        "incidents": len(incidents),
    }


def layout(path: Path) -> int:
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(raw)")}
    return 1 if "source" in columns else 2


def rows(path: Path) -> dict[str, int]:
    """Rows per kind, in either layout."""
    if layout(path) == 1:
        kinds = {t: f"SELECT count(*) FROM {t}" for t in ("raw", "hourly", "daily", "incidents")}
    else:
        kinds = {
            "raw": "SELECT count(*) FROM raw",
            "hourly": "SELECT count(*) FROM days WHERE hours IS NOT NULL",
            "daily": "SELECT count(*) FROM days",
            "incidents": "SELECT count(*) FROM incidents",
        }
    with sqlite3.connect(path) as db:
        return {kind: db.execute(sql).fetchone()[0] for kind, sql in kinds.items()}
