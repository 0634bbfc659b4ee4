"""The SQLite store for real: files in a temp dir, batching, restarts, and bad input
(a corrupt file, a read-only path, a full disk) that never stops the agent."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.contract.notification import Kind, Severity
from probe.core.model import Status
from probe.engine.history.codec import decode_chunk
from probe.engine.history.model import DAY, HOUR
from probe.engine.history.sqlite import SqliteBackend
from probe.engine.history.writer import HistoryWriter
from tests.history_helpers import NOW, alert, feed, result, sqlite_writer
from tests.support import HandClock

P, F = Status.PASS, Status.FAIL


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        found: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return found


async def test_results_reach_the_file_in_a_batch_about_a_second_later(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    writer = HistoryWriter(SqliteBackend(path), "probe", ["api"], flush_interval=1.0)
    writer.start()
    try:
        await asyncio.sleep(0.3)  # the first flush opens the file
        now = time.time()
        started = time.perf_counter()
        for i in range(200):
            writer.observe("api", result(P, now + i / 1000), 15.0)
        observe_cost = time.perf_counter() - started
        assert rows(path, "raw") == 0, "observe wrote on the caller's time"
        deadline = time.monotonic() + 5
        while rows(path, "raw") == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert rows(path, "raw") == 1  # 200 results of one hour: one row
        assert observe_cost < 0.1
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await writer.stop()
    assert writer.writes_ok >= 1 and writer.writes_failed == 0


async def test_history_and_incidents_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    clock = HandClock(NOW)
    first = sqlite_writer(path, clock, ["api"])
    feed(first, "api", NOW - 20 * 60, [P] * 10 + [F] * 10)
    since = NOW - 10 * 60
    first.record_alert(alert(Kind.FIRING, "api", since, since + 60, Severity.CRITICAL))
    first.record_alert(alert(Kind.RESOLVED, "api", since, NOW - 60, Severity.CRITICAL))
    first.record_alert(alert(Kind.FIRING, "db", NOW - 30, NOW - 20, Severity.WARNING))
    await first.flush()
    await first.stop()

    clock.now += 5 * 60  # five minutes later, a new process
    second = sqlite_writer(path, clock, ["api"])
    await second.flush()
    assert second.available
    # The current hour keeps what the first process wrote, and new results add to it.
    feed(second, "api", clock.now - 60, [P])
    await second.flush()
    await second.stop()

    hour = second.hours["api"][int(NOW // 3600) * 3600]
    assert (hour.passed, hour.failed) == (11, 10)
    resolved, ongoing = sorted(second.incidents(), key=lambda i: i.start)
    assert (resolved.check, resolved.measure, resolved.severity) == ("api", "up", "critical")
    assert resolved.end == NOW - 60 and resolved.duration(clock.now) == 9 * 60
    assert resolved.summary == "api down: connection refused"
    assert ongoing.check == "db" and ongoing.end is None
    assert rows(path, "incidents") == 2


async def test_a_corrupt_file_is_moved_aside_with_one_line_and_a_fresh_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(b"this is not an SQLite database, just bytes " * 200)
    writer = sqlite_writer(path, HandClock(NOW), ["api"])
    feed(writer, "api", NOW - 60, [P])
    with caplog.at_level(logging.INFO, logger="probe.history"):
        await writer.flush()
    await writer.stop()

    assert writer.available, writer.problem
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert f"history file {path} is not a usable database" in lines[0]
    assert "moved it to" in lines[0] and "started a fresh one" in lines[0]
    (aside,) = tmp_path.glob("history.db.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not an SQLite database")
    assert rows(path, "raw") == 1


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a disk that fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_costs_a_line_and_a_metric_then_writes_resume_with_nothing_lost(
    small_tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_tmpfs / "history.db"
    clock = HandClock(NOW)
    writer = sqlite_writer(path, clock, ["api"])
    await writer.flush()
    assert writer.available
    filler = small_tmpfs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    # Results of many hours, so the writes need new pages on the full disk.
    with caplog.at_level(logging.INFO, logger="probe.history"):
        for hours_back in range(1, 40):
            feed(writer, "api", NOW - hours_back * 3600, [P] * 60 + [F] * 60, interval=20)
        for _ in range(3):
            writer._next_attempt = 0.0  # no waiting out the backoff in a test
            await writer.flush()
        assert not writer.available and writer.writes_failed == 3
        failing = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(failing) == 1, failing  # one line, not one per second
        assert "unavailable: disk full" in failing[0]
        assert writer.pending() == 39 * 120

        filler.unlink()
        writer._next_attempt = 0.0
        await writer.flush()
    assert writer.available and writer.pending() == 0
    assert "available again" in caplog.records[-1].getMessage()
    await writer.stop()
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT hour, data FROM raw").fetchall()
    assert sum(len(decode_chunk(hour, blob)) for hour, blob in stored) == 39 * 120


async def test_a_read_only_path_is_reported_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    try:
        writer = sqlite_writer(mount / "history.db", HandClock(NOW), ["api"])
        feed(writer, "api", NOW - 60, [P, P])
        with caplog.at_level(logging.INFO, logger="probe.history"):
            await writer.flush()
            writer._next_attempt = 0.0
            await writer.flush()  # the same problem again: no second line
        (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        await writer.stop()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    assert not writer.available
    assert f"history store sqlite://{mount}/history.db unavailable" in line
    assert "read-only file system" in line, line
    # The results are still counted in memory: the page shows them.
    assert writer.hours["api"][int((NOW - 60) // 3600) * 3600].passed == 2


async def test_pruning_gives_the_freed_pages_back_to_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    start = NOW - 5 * DAY
    clock = HandClock(start + 3 * DAY)
    writer = sqlite_writer(path, clock, ["api"])
    rng = random.Random(5)
    for i in range(3 * 24 * 240):  # three days every 15 s: raw rows over many pages
        writer.observe("api", result(P, start + i * 15, rng.uniform(0.005, 0.05)), 15.0)
    await writer.stop()

    clock.now = NOW  # two days on: every raw row is past its 48 hours
    writer = sqlite_writer(path, clock, ["api"])
    writer.observe("api", result(P, NOW - 60), 15.0)
    await writer.stop()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT min(hour) FROM raw").fetchone()[0] >= NOW - 49 * HOUR
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0


async def test_each_check_is_one_series_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    clock = HandClock(NOW)
    for minute in range(3):  # three agents' lifetimes, one after the other
        writer = sqlite_writer(path, clock, ["api", "db"])
        feed(writer, "api", NOW - 600 + minute * 60, [P])
        feed(writer, "db", NOW - 600 + minute * 60, [F])
        await writer.stop()
    with sqlite3.connect(path) as db:
        names = db.execute("SELECT check_name FROM series ORDER BY 1").fetchall()
    assert names == [("api",), ("db",)]
    assert rows(path, "raw") == 2


async def test_a_result_that_arrives_while_a_write_is_under_way_is_written_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "history.db"
    clock = HandClock(NOW)
    writer = sqlite_writer(path, clock, ["api"])
    feed(writer, "api", NOW - 120, [P])
    await writer.flush()  # opens the file and loads what is there

    real_write = SqliteBackend.write
    writing, go_on = asyncio.Event(), asyncio.Event()

    async def slow_write(self: SqliteBackend, batch: Any) -> None:
        writing.set()
        await go_on.wait()
        await real_write(self, batch)

    monkeypatch.setattr(SqliteBackend, "write", slow_write)
    feed(writer, "api", NOW - 60, [P])
    flushing = asyncio.create_task(writer.flush())
    await writing.wait()
    feed(writer, "api", NOW - 30, [F])  # the write holds the two results before it
    go_on.set()
    await flushing
    monkeypatch.setattr(SqliteBackend, "write", real_write)
    await writer.stop()  # its last flush writes what arrived meanwhile

    with sqlite3.connect(path) as db:
        (blob,) = db.execute("SELECT data FROM raw").fetchone()
    stored = decode_chunk(int(NOW // HOUR) * HOUR, blob)
    assert len(stored) == 3
    hour = writer.hours["api"][int(NOW // HOUR) * HOUR]
    assert (hour.passed, hour.failed) == (2, 1)
