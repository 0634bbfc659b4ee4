"""Shared maintenance windows and incident notes in the fleet store itself, over real
sockets (Redis, PostgreSQL, PostgreSQL through PgBouncer in transaction mode): what one
replica writes another reads and closes, the store stays bounded, and an unreachable
store is one plain error."""

from __future__ import annotations

import json
import uuid

import pytest

from probe.core.incident_notes import MAX_NOTES, new_note
from probe.core.maintenance import DAY, KEEP_ENDED, MAX_RUNTIME_WINDOWS, Window, new_window
from probe.engine.fleet.backend import BackendError, LeaseBackend
from probe.engine.fleet.plans import SharedPlans
from probe.engine.fleet.stores import open_backend

pytest_plugins = ["tests.deep_servers"]

T0 = 1_800_000_000.0


def two_replicas(dsn: str) -> tuple[LeaseBackend, LeaseBackend]:
    fleet = f"plans-{uuid.uuid4().hex[:8]}"  # its own rows or keys: no shared contents read
    return open_backend(dsn, fleet, 2.0), open_backend(dsn, fleet, 2.0)


async def test_a_window_opened_on_one_replica_is_seen_and_closed_on_another(
    backend: str,
) -> None:
    store_a, store_b = two_replicas(backend)
    a, b = SharedPlans(store_a, lambda: T0 + 10), SharedPlans(store_b, lambda: T0 + 10)
    try:
        assert await b.load() == ([], [])
        window = new_window(["cache"], 900, "Redis 7.2 upgrade", T0)
        await a.put_window(window)
        windows, notes = await b.load()
        assert windows == [window] and notes == []
        assert windows[0].origin == "api" and windows[0].checks == ("cache",)

        closed = await b.close_window(window.id, T0 + 60)  # b never opened it
        assert closed is not None
        assert (closed.id, closed.start, closed.end) == (window.id, T0, T0 + 60)
        assert closed.closed is True
        assert (await a.load())[0] == [closed]
        assert await a.close_window(window.id, T0 + 90) == closed  # already ended: unchanged
        assert await a.close_window("nosuchwindow", T0 + 90) is None

        note = new_note("inc-1", "Paystack confirms elevated 5xx\x00; retries are on.", T0 + 5)
        await b.add_note(note)
        assert (await a.load())[1] == [note]
        assert note.text == "Paystack confirms elevated 5xx ; retries are on."
        assert a.writes == 1 and b.writes == 2  # a's close of an ended window wrote nothing
    finally:
        await store_a.close()
        await store_b.close()


@pytest.mark.timeout(60)
async def test_the_store_keeps_the_same_bounds_as_one_agent(backend: str) -> None:
    store_a, store_b = two_replicas(backend)
    now = T0 + KEEP_ENDED + 10 * DAY
    a, b = SharedPlans(store_a, lambda: now), SharedPlans(store_b, lambda: now)
    try:
        old = Window("old", (), T0, T0 + 3600, "long ago", "api")
        await a.put_window(old)
        assert await store_a.get_plan("windows", "old") is not None
        assert (await b.load())[0] == []  # ended more than KEEP_ENDED ago
        assert await store_a.get_plan("windows", "old") is None  # and dropped from the store

        opened = [new_window([], 60, f"deploy {i}", now - 1000 + i) for i in range(205)]
        for window in opened:
            await a.put_window(window)
        kept = (await b.load())[0]
        assert len(kept) == MAX_RUNTIME_WINDOWS
        assert kept == opened[-MAX_RUNTIME_WINDOWS:]  # the newest, oldest first
        assert len((await store_b.load_plans())["windows"]) == MAX_RUNTIME_WINDOWS

        added = [new_note("inc-1", f"update {i}", now + i) for i in range(MAX_NOTES + 3)]
        for note in added:
            await b.add_note(note)
        assert (await a.load())[1] == added[-MAX_NOTES:]
        assert len((await store_a.load_plans())["notes"]) == MAX_NOTES
    finally:
        await store_a.close()
        await store_b.close()


async def test_an_unreadable_entry_is_skipped_not_fatal(backend: str) -> None:
    store, other = two_replicas(backend)
    plans = SharedPlans(store, lambda: T0)
    try:
        await store.put_plan("windows", "bad", '{"id": "bad", "start": "soon"}')
        await store.put_plan("notes", "worse", "[1, 2]")
        good = new_window(["cache"], 60, "", T0)
        await plans.put_window(good)
        assert await plans.load() == ([good], [])
        assert await plans.close_window("bad", T0) is None
    finally:
        await store.close()
        await other.close()


async def test_an_unreachable_store_refuses_writes_in_one_plain_line() -> None:
    for dsn in ("redis://127.0.0.1:9/0", "postgresql://postgres:pw@127.0.0.1:9/x"):
        store = open_backend(dsn, "nowhere", 1.0)
        plans = SharedPlans(store)
        try:
            with pytest.raises(BackendError) as raised:
                await plans.put_window(new_window([], 60, "", T0))
            assert str(raised.value) == "connection refused (127.0.0.1:9)"
            with pytest.raises(BackendError):
                await plans.close_window("abc", T0)
            with pytest.raises(BackendError):
                await plans.add_note(new_note("inc", "text", T0))
        finally:
            await store.close()


def test_a_shared_window_reads_back_as_written() -> None:
    window = new_window(["cache", "queue"], 900, "r\u00e9seau", T0)
    assert Window.from_dict(json.loads(json.dumps(window.to_dict()))) == window
