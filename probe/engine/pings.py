"""Heartbeat pings: the inbox the `/ping/<check>` routes (`probe.web.pings`) record into.

A ping only updates memory; a background task writes the inbox to
`<agent.state_file>.heartbeats.json` (atomically, off the request path) so a restart in
the middle of a run still knows when it started. The alert state file is not shared:
its format is the alert service's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict

from probe.contract import heartbeat_state
from probe.contract.heartbeat_state import (
    FORMAT_VERSION,
    MAX_OPEN_RUNS,
    HeartbeatState,
    clean_message,
)
from probe.core.tasks import cancel_and_wait
from probe.core.times import Clock

log = logging.getLogger("probe.pings")

FLUSH_INTERVAL = 1.0


class Inbox:
    """Heartbeat states by check name. Recording is memory only; `start` loads the file and
    runs the writer, `stop` writes what is left."""

    def __init__(self, path: str = "", clock: Clock = time.time) -> None:
        self.path = path
        self.clock = clock
        self._states: dict[str, HeartbeatState] = {}
        self._names: frozenset[str] = frozenset()
        self._dirty = False
        self._writer: asyncio.Task[None] | None = None

    @staticmethod
    def path_for(state_file: str) -> str:
        return f"{state_file}.heartbeats.json" if state_file else ""

    def configure(self, names: Iterable[str]) -> None:
        """The heartbeat checks now configured; others' pings are 404 (their state stays
        in memory until the next write drops it)."""
        self._names = frozenset(names)
        now = self.clock()
        for name in self._names:
            if name not in self._states:
                self._states[name] = HeartbeatState(since=now)
                self._dirty = True

    def knows(self, name: str) -> bool:
        return name in self._names

    def state(self, name: str) -> HeartbeatState | None:
        return self._states.get(name)

    def record(self, name: str, kind: str, exit_code: int | None, rid: str, message: str) -> None:
        """`kind` is start, success or fail. A success ending a run that started after an
        open one shows that one died: it is dropped rather than failing forever."""
        now = self.clock()
        state = self._states.setdefault(name, HeartbeatState(since=now))
        self._dirty = True
        if kind == "start":
            state.open_runs[rid] = now
            state.last_start = now
            while len(state.open_runs) > MAX_OPEN_RUNS:
                del state.open_runs[min(state.open_runs, key=state.open_runs.__getitem__)]
            return
        started = state.open_runs.pop(rid, None)
        state.last_end = now
        state.failed = kind == "fail"
        state.exit_code = exit_code
        state.message = clean_message(message)
        state.duration = now - started if started is not None else None
        if not state.failed:
            state.last_success = now
            if started is not None:
                for other, at in list(state.open_runs.items()):
                    if at < started:
                        del state.open_runs[other]

    # -- the file

    async def load(self) -> None:
        if self.path:
            self._states.update(await heartbeat_state.load(self.path, self.clock()))

    def snapshot(self) -> str:
        kept = {n: asdict(s) for n, s in self._states.items() if n in self._names}
        return json.dumps({"version": FORMAT_VERSION, "checks": kept})

    def write(self, text: str) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, temp = tempfile.mkstemp(prefix=".heartbeats.", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    async def flush(self) -> None:
        if not self.path or not self._dirty:
            return
        self._dirty = False
        try:
            await asyncio.to_thread(self.write, self.snapshot())
        except OSError as exc:
            self._dirty = True
            log.warning("cannot write heartbeat state %s: %s", self.path, exc.strerror or exc)

    async def start(self) -> None:
        await self.load()
        if self.path and self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name="heartbeat-state")

    async def _write_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def stop(self) -> None:
        await cancel_and_wait(self._writer)
        self._writer = None
        await self.flush()
