"""History: the store's size per check per 90 days, and /status render time.

Run by hand: `.venv/bin/python bench/bench_history.py [--checks 4] [--page-checks 50]
[--flush-every 3600] [--keep PATH]`.

1. Size: a check every 15 s for 90 days (518,400 results each, a few failures a day and
   jittered response times), written through the real writer and SQLite file with a
   simulated clock; retention prunes as it would. Reported: the file's bytes per check
   once the agent has stopped (the goal of issue 28: under 50,000), and its pages per
   table (SQLite's dbstat). `--flush-every 300` rewrites each hour's row 12 times as it
   grows, nearer to the agent's once a second (and 10 times slower); `--keep` leaves the
   file there to look at.
2. /status: 50 checks with 90 days of hourly rollups and 20 incidents in memory; the
   time of one refresh (view rebuild + page + badges), and of the page render alone.
   Requests serve the bytes this produces.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probe.contract.config import load_config  # noqa: E402
from probe.contract.notification import Alert, Kind, Severity  # noqa: E402
from probe.core.model import CheckResult, Status  # noqa: E402
from probe.engine.history.model import DAY, HOUR, Rollup  # noqa: E402
from probe.engine.history.sqlite import SqliteBackend  # noqa: E402
from probe.engine.history.writer import HistoryWriter  # noqa: E402
from probe.engine.store import ResultStore  # noqa: E402
from probe.web.history import HistoryView  # noqa: E402
from probe.web.settings import LiveSettings  # noqa: E402
from probe.web.status import StatusSite, render_page  # noqa: E402

INTERVAL = 15.0
DAYS = 90


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def store_size(checks: int, flush_every: float, keep: Path | None) -> tuple[int, float]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = keep or Path(tmp) / "history.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        end = (time.time() // DAY) * DAY
        clock = Clock(end - DAYS * DAY)
        names = [f"check-{i}" for i in range(checks)]
        writer = HistoryWriter(SqliteBackend(path), "bench", names, clock=clock)
        started = time.perf_counter()
        while clock.now < end:
            # The agent writes once a second, rewriting the hour's row as it grows; a
            # shorter `--flush-every` comes closer to that (and takes longer).
            flush_end = clock.now + flush_every
            t = clock.now
            while t < flush_end:
                for name in names:
                    status = Status.FAIL if rng.random() < 0.001 else Status.PASS
                    rt = max(0.0005, rng.gauss(0.012, 0.003))
                    writer.observe(name, CheckResult(status, rt, "", t + rng.random()), INTERVAL)
                t += INTERVAL
            clock.now = flush_end
            await writer.flush()
        await writer.stop()
        elapsed = time.perf_counter() - started
        # What stays on disk once the agent stops: the file alone (the last connection to
        # close checkpoints the WAL into it and removes the -wal and -shm files).
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            where_bytes_go(db, checks)
        size = path.stat().st_size
        for suffix in ("-wal", "-shm"):
            extra = Path(f"{path}{suffix}")
            if extra.exists():
                size += extra.stat().st_size
        print(
            "  while the agent runs SQLite also keeps a -shm index of 32 KiB per file (not "
            "per check) and a WAL of up to 4 MiB"
        )
        if keep is None:
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
                db.execute("VACUUM")
            print(f"  after VACUUM: {path.stat().st_size / checks / 1024:,.1f} KiB per check")
        return size, elapsed


def where_bytes_go(db: sqlite3.Connection, checks: int) -> None:
    """Pages per table and index, and how full they are (SQLite's dbstat, when built in)."""
    try:
        rows = db.execute(
            "SELECT name, count(*), sum(pgsize), sum(payload), sum(unused) FROM dbstat "
            "GROUP BY name ORDER BY 3 DESC"
        ).fetchall()
    except sqlite3.OperationalError:
        return  # no dbstat in this build
    (free,) = db.execute("PRAGMA freelist_count").fetchone()
    (total,) = db.execute("PRAGMA page_count").fetchone()
    print(f"  {'table/index':<28} {'pages':>6} {'KiB/check':>10} {'payload':>8} {'unused':>7}")
    for name, pages, size, payload, unused in rows:
        print(
            f"  {name:<28} {pages:>6} {size / checks / 1024:>10,.1f} "
            f"{payload / checks / 1024:>8,.1f} {unused / checks / 1024:>7,.1f}"
        )
    print(f"  free pages: {free}; pages in all (with pointer maps): {total}")


def page_fixture(tmp: Path, checks: int) -> tuple[StatusSite, HistoryWriter]:
    names = [f"service-{i:02d}" for i in range(checks)]
    lines = ["agent: { name: bench, listen: '127.0.0.1:0', history: off }", "checks:"]
    lines += [f"  - {{ name: {n}, type: tcp, host: 127.0.0.1, port: 1 }}" for n in names]
    (tmp / "probe.yaml").write_text("\n".join(lines) + "\n")
    config = load_config(tmp / "probe.yaml")
    now = time.time()
    store = ResultStore(config, clock=lambda: now)
    for name in names:
        store.record(name, CheckResult(Status.PASS, 0.012, "", now))
    writer = HistoryWriter(SqliteBackend(tmp / "unused.db"), "bench", names, clock=lambda: now)
    rng = random.Random(3)
    first = int(now // HOUR) * HOUR - DAYS * DAY
    for name in names:
        hours = writer.hours.setdefault(name, {})
        for hour in range(first, int(now) + 1, HOUR):
            failed = 1 if rng.random() < 0.01 else 0
            p50 = int(rng.gauss(12000, 2000))
            hours[hour] = Rollup(240 - failed, 0, failed, (240 - failed) * 15000, 3_600_000,
                                 p50, p50 + 8000)  # fmt: skip
    for i in range(20):
        since = now - (i + 1) * 3 * HOUR
        writer.record_alert(
            Alert(
                names[i % checks],  # fewer checks than incidents: some get several
                "",
                Severity.CRITICAL,
                Kind.RESOLVED,
                "connection refused",
                since,
                since + 600,
                measure="up",
            )
        )
    writer._rebuild_merged()  # what loading them from the store does
    settings = LiveSettings.of(config.agent)
    view = HistoryView(store, writer, settings, clock=lambda: now)
    return StatusSite(view, settings), writer


def timed(fn: object, runs: int) -> float:
    assert callable(fn)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=4, help="checks for the size run")
    parser.add_argument("--page-checks", type=int, default=50)
    parser.add_argument("--skip-size", action="store_true", help="only time the page")
    parser.add_argument(
        "--flush-every", type=float, default=HOUR, help="simulated seconds between writes"
    )
    parser.add_argument("--keep", type=Path, help="write the store here and keep it")
    args = parser.parse_args()

    if not args.skip_size:
        size, elapsed = asyncio.run(store_size(args.checks, args.flush_every, args.keep))
        per_check = size / args.checks
        print(
            f"store: {args.checks} checks x {DAYS} days at {INTERVAL:g}s = "
            f"{args.checks * DAYS * DAY / INTERVAL:,.0f} results in {elapsed:.1f}s; file "
            f"{size / 1024:,.1f} KiB, {per_check:,.0f} bytes ({per_check / 1024:,.1f} KiB) per "
            "check (goal < 50,000 bytes)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        site, _ = page_fixture(Path(tmp), args.page_checks)
        refresh = timed(site.refresh, 20)
        cold = timed(lambda: render_page(site.view.snapshot), 20)
        page_size = sum(map(len, site.page))  # kept in pieces
        print(
            f"/status with {args.page_checks} checks, {DAYS} days: the refresh after each "
            f"batch (rebuild + page + badges) {refresh:.1f} ms; a cold page render (no "
            f"cached past days) {cold:.1f} ms (goal < 50 ms); page {page_size / 1024:,.0f} KiB"
        )


if __name__ == "__main__":
    main()
