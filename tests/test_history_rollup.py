"""Uptime and rollups from a fake clock and known results: exact shares per window,
including days with no data, and the same figures after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.contract.notification import Kind, Severity
from probe.core.model import Status
from probe.engine.history.codec import decode_chunk, decode_day, encode_chunk, encode_day
from probe.engine.history.model import DAY, HOUR, Chunk, Rollup
from probe.engine.history.rollup import combine, percentile, rollup_chunk
from probe.engine.history.sqlite import SqliteBackend
from probe.engine.store import ResultStore
from probe.web.history import HistoryView
from probe.web.settings import LiveSettings
from tests.history_helpers import DAY0, NOW, alert, config_for, feed, sqlite_writer
from tests.history_layout1 import layout, rows, to_layout1
from tests.support import HandClock

P, W, F = Status.PASS, Status.WARN, Status.FAIL


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.95) == 95
    assert percentile([7], 0.95) == 7
    assert percentile([], 0.5) == 0


def test_chunks_and_days_survive_encoding() -> None:
    chunk = Chunk(int(DAY0))
    for i in range(240):
        chunk.add(DAY0 + i * 15 + 0.123, [P, W, F][i % 3], 0.0042 + i / 1e5, 15.0)
    decoded = decode_chunk(int(DAY0), encode_chunk(chunk))
    assert list(decoded.ts_ms) == list(chunk.ts_ms)
    assert list(decoded.status) == list(chunk.status)
    assert list(decoded.rt_us) == list(chunk.rt_us)
    assert rollup_chunk(decoded) == rollup_chunk(chunk)
    day = {h: Rollup(240, 0, 0, 3_600_000, 3_600_000, 4200 + 10 * h, 9000) for h in range(24)}
    assert decode_day(encode_day(day)) == day


def test_an_hour_rolls_up_to_counts_time_and_latency() -> None:
    chunk = Chunk(int(DAY0))
    for i in range(20):
        chunk.add(DAY0 + i * 60, P if i < 15 else (W if i < 17 else F), (i + 1) / 1000, 60.0)
    rollup = rollup_chunk(chunk)
    assert (rollup.passed, rollup.warned, rollup.failed) == (15, 2, 3)
    assert rollup.up_ms == 17 * 60_000 and rollup.known_ms == 20 * 60_000
    assert rollup.p50_us == 10_000 and rollup.p95_us == 19_000
    assert combine([rollup, Rollup()]) == rollup


async def _scenario(path: Path) -> HandClock:
    clock = HandClock(NOW)
    writer = sqlite_writer(path, clock, ["api"])
    # Today: 27 of 30 up in the current hour, 20 of 20 up (half of them warn) at 02:00.
    feed(writer, "api", NOW - 30 * 60, [P] * 27 + [F] * 3)
    feed(writer, "api", DAY0 + 2 * HOUR, [P] * 10 + [W] * 10)
    # Three days ago all 40 failed; 20 days ago 60 passed; 60 days ago 60 failed.
    feed(writer, "api", DAY0 - 3 * DAY + 5 * HOUR, [F] * 40)
    feed(writer, "api", DAY0 - 20 * DAY + 8 * HOUR, [P] * 60)
    feed(writer, "api", DAY0 - 60 * DAY + 9 * HOUR, [F] * 60)
    await writer.flush()
    assert writer.available, writer.problem
    await writer.stop()
    return clock


EXPECTED = {"24h": 47 / 50, "7d": 47 / 90, "30d": 107 / 150, "90d": 107 / 210}


async def _view(path: Path, tmp_path: Path, clock: HandClock) -> HistoryView:
    writer = sqlite_writer(path, clock, ["api"])
    await writer.flush()  # a fresh writer: everything it knows comes from the file
    await writer.stop()
    store = ResultStore(config_for(tmp_path, ["api"]), clock=clock)
    return HistoryView(store, writer, LiveSettings.of(store.config.agent), clock)


async def test_uptime_per_window_is_exact_and_skips_days_without_data(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    clock = await _scenario(path)
    view = await _view(path, tmp_path, clock)

    (api,) = view.snapshot.checks
    for window, share in EXPECTED.items():
        assert api.uptime[window] == pytest.approx(share, abs=1e-12), window
    assert len(api.days) == 90
    states = {day: r.worst for day, r in api.days}
    assert states[DAY0] is F  # three failures today make today's bar red
    assert states[DAY0 - DAY] is None  # no data yesterday: grey, not green
    assert states[DAY0 - 3 * DAY] is F
    assert states[DAY0 - 20 * DAY] is P
    assert states[DAY0 - 60 * DAY] is F
    assert sum(1 for s in states.values() if s is not None) == 4


async def test_the_history_body_reports_hourly_points_and_the_window_share(
    tmp_path: Path,
) -> None:
    import json

    path = tmp_path / "history.db"
    clock = await _scenario(path)
    view = await _view(path, tmp_path, clock)

    day = json.loads(view.history_body("api", "24h"))
    assert day["resolution"] == "1h" and len(day["points"]) == 24
    assert day["uptime"] == round(47 / 50, 6)
    current = day["points"][-1]
    assert current["start"] == "2026-11-30T12:00:00Z"
    assert (current["pass"], current["warn"], current["fail"]) == (27, 0, 3)
    assert current["uptime"] == 0.9 and current["responseTimeP95"] == 10.0
    empty = day["points"][0]
    assert empty["uptime"] is None and empty["responseTimeP50"] is None

    quarter = json.loads(view.history_body("api", "90d"))
    assert quarter["resolution"] == "1d" and len(quarter["points"]) == 90
    assert quarter["uptime"] == round(107 / 210, 6)
    uptime = json.loads(view.uptime_body)
    assert uptime["checks"][0]["uptime"] == {w: round(s, 6) for w, s in EXPECTED.items()}


async def test_a_store_of_the_previous_release_keeps_every_row_and_figure(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    clock = await _scenario(path)
    writer = sqlite_writer(path, clock, ["api"])
    writer.record_alert(alert(Kind.RESOLVED, "api", NOW - 2 * HOUR, NOW - HOUR, Severity.CRITICAL))
    await writer.stop()
    before = to_layout1(path)
    assert rows(path) == before
    assert layout(path) == 1 and before["raw"] == 2 and before["hourly"] == 4
    assert before["incidents"] == 1

    # `probe history` reads it as it is, and leaves it so.
    reader = SqliteBackend(path, repair=False)
    await reader.open()
    snapshot = await reader.load(int(DAY0 - 89 * DAY), int(DAY0 - 399 * DAY), 10)
    chunks = await reader.read_chunks("probe", [("api", int(NOW // HOUR * HOUR))])
    await reader.close()
    assert len(snapshot.days) == 4 and len(snapshot.daily) == 4
    assert [i.start for i in snapshot.incidents] == [NOW - 2 * HOUR]
    assert (
        len(decode_chunk(int(NOW // HOUR * HOUR), chunks[("api", int(NOW // HOUR * HOUR))])) == 30
    )
    assert layout(path) == 1

    # The agent moves it to the new layout: every row kept, the same figures.
    view = await _view(path, tmp_path, clock)
    assert layout(path) == 2
    (api,) = view.snapshot.checks
    for window, share in EXPECTED.items():
        assert api.uptime[window] == pytest.approx(share, abs=1e-12), window
    assert [(i.check, i.start, i.end) for i in view.snapshot.incidents] == [
        ("api", NOW - 2 * HOUR, NOW - HOUR)
    ]
    assert rows(path) == before


async def test_past_the_hourly_retention_a_day_keeps_its_total_and_loses_its_hours(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    old_day = DAY0 - 100 * DAY
    clock = HandClock(old_day + 10 * HOUR)
    writer = sqlite_writer(path, clock, ["api"])
    feed(writer, "api", old_day + 9 * HOUR, [P, P, P, F])
    await writer.stop()
    assert rows(path) == {"raw": 1, "hourly": 1, "daily": 1, "incidents": 0}

    clock.now = NOW  # a hundred days on: the next flush prunes
    writer = sqlite_writer(path, clock, ["api"])
    feed(writer, "api", NOW - 60, [P])
    await writer.stop()
    assert rows(path) == {"raw": 1, "hourly": 1, "daily": 2, "incidents": 0}

    reader = SqliteBackend(path, repair=False)
    await reader.open()
    snapshot = await reader.load(int(DAY0 - 89 * DAY), int(DAY0 - 399 * DAY), 10)
    await reader.close()
    assert [day for _, _, day, _ in snapshot.days] == [DAY0]
    totals = {day: rollup for _, _, day, rollup in snapshot.daily}
    assert (totals[old_day].passed, totals[old_day].failed) == (3, 1)
    assert totals[old_day].up_ms == 3 * 60_000 and totals[old_day].known_ms == 4 * 60_000
