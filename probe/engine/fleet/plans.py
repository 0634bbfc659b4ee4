"""Run-time maintenance windows and incident notes, shared by a fleet through its store.

An admin write lands on whichever replica the load balancer picked. That replica writes
it to the store first (and refuses it, changing nothing, while the store cannot be
reached); every replica takes the store's copy each round (lease/3), so what the leader
covers follows within one round, and any replica can close a window another opened.
The store is bounded as one agent's state file is: ended windows go after KEEP_ENDED,
and only the newest MAX_RUNTIME_WINDOWS windows and MAX_NOTES notes are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from probe.core.incident_notes import MAX_NOTES, Note
from probe.core.incident_notes import bounded as bounded_notes
from probe.core.maintenance import MAX_RUNTIME_WINDOWS, Window, bounded, closed_at
from probe.core.times import Clock
from probe.engine.fleet.backend import BackendError

if TYPE_CHECKING:
    from probe.engine.fleet.backend import LeaseBackend

log = logging.getLogger("probe.fleet")

PLAN_KINDS = ("windows", "notes")

PlansSink = Callable[[list[Window], list[Note]], None]


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class SharedPlans:
    def __init__(self, backend: LeaseBackend, clock: Clock = time.time) -> None:
        self.backend = backend
        self.clock = clock
        # Bumped after every write: a load that overlapped one may predate it, and must
        # not take back what this replica just wrote.
        self.writes = 0
        self._unparsed: set[str] = set()  # ids already logged as unreadable

    # ------------------------------------------------------------ writes (BackendError)

    async def put_window(self, window: Window) -> None:
        await self._put("windows", window.id, _dumps(window.to_dict()), MAX_RUNTIME_WINDOWS)

    async def close_window(self, window_id: str, now: float) -> Window | None:
        """End a shared window now; None when the store knows no such id."""
        text = await self.backend.get_plan("windows", window_id)
        window = self._window(window_id, text) if text is not None else None
        if window is None:
            return None
        closed = closed_at(window, now)
        if closed is not window:
            await self._put("windows", closed.id, _dumps(closed.to_dict()), MAX_RUNTIME_WINDOWS)
        return closed

    async def add_note(self, note: Note) -> None:
        await self._put("notes", note.id, _dumps(note.to_dict()), MAX_NOTES)

    async def _put(self, kind: str, id: str, entry: str, bound: int) -> None:
        try:
            count = await self.backend.put_plan(kind, id, entry)
        finally:
            self.writes += 1
        if count > bound:
            # Written already; if this fails, the next round's load drops the surplus.
            with contextlib.suppress(BackendError):
                await self.load()

    # ------------------------------------------------------------ the round

    async def load(self) -> tuple[list[Window], list[Note]]:
        """The store's windows and notes within bounds; drops the rest from the store."""
        raw = await self.backend.load_plans()
        windows = [w for i, t in raw.get("windows", {}).items() if (w := self._window(i, t))]
        notes = [n for i, t in raw.get("notes", {}).items() if (n := self._note(i, t))]
        kept_windows = bounded(windows, self.clock())
        kept_notes = bounded_notes(notes)
        stale_windows = {w.id for w in windows} - {w.id for w in kept_windows}
        stale_notes = {n.id for n in notes} - {n.id for n in kept_notes}
        await self.backend.drop_plans("windows", sorted(stale_windows))
        await self.backend.drop_plans("notes", sorted(stale_notes))
        return kept_windows, kept_notes

    async def run(self, sink: PlansSink, step: float) -> None:
        """Every `step`, hand the store's copy to `sink`. While the store cannot be reached
        the copy held stays (the lease loop says so in the log and /health)."""
        while True:
            started = time.monotonic()
            writes = self.writes
            try:
                windows, notes = await asyncio.wait_for(self.load(), step)
            except (BackendError, TimeoutError):
                pass
            except Exception:  # the loop must outlive any one surprise
                log.exception("fleet: reading shared maintenance windows failed")
            else:
                if writes == self.writes:
                    sink(windows, notes)
            await asyncio.sleep(max(0.0, step - (time.monotonic() - started)))

    # ------------------------------------------------------------ parsing

    def _window(self, id: str, text: str) -> Window | None:
        try:
            return Window.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._unreadable("window", id, exc)
            return None

    def _note(self, id: str, text: str) -> Note | None:
        try:
            return Note.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._unreadable("note", id, exc)
            return None

    def _unreadable(self, what: str, id: str, exc: Exception) -> None:
        if id not in self._unparsed:
            self._unparsed.add(id)
            log.warning("fleet: ignoring shared %s %s: unreadable (%s)", what, id[:64], exc)
