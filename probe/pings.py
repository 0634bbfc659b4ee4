"""Heartbeat pings: the `/ping/<check>` routes and the inbox they record into.

A ping only updates memory; a background task writes the inbox to
`<agent.state_file>.heartbeats.json` (atomically, off the request path) so a restart in
the middle of a run still knows when it started. The alert state file is not shared:
its format is the alert service's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from probe.tasks import cancel_and_wait
from probe.times import Clock

log = logging.getLogger("probe.pings")

MAX_MESSAGE = 10 * 1024  # bytes of a ping's body kept as the last message
MAX_RID = 64
MAX_OPEN_RUNS = 64  # per check: overlapping runs beyond this are a runaway, not a schedule
FLUSH_INTERVAL = 1.0
FORMAT_VERSION = 1
JSON = "application/json"
NO_STORE = {"Cache-Control": "no-store"}
_OK = json.dumps({"ok": True}).encode()


@dataclass(slots=True)
class HeartbeatState:
    since: float  # when the agent began watching this check
    last_success: float | None = None
    last_start: float | None = None
    last_end: float | None = None
    failed: bool = False  # the last finished run failed
    exit_code: int | None = None
    duration: float | None = None  # of the last finished run with a known start
    message: str = ""
    open_runs: dict[str, float] = field(default_factory=dict)  # rid ("" for none) -> start

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeartbeatState:
        runs = data.get("open_runs", {})
        return cls(
            since=float(data["since"]),
            last_success=_opt_float(data.get("last_success")),
            last_start=_opt_float(data.get("last_start")),
            last_end=_opt_float(data.get("last_end")),
            failed=bool(data.get("failed", False)),
            exit_code=int(data["exit_code"]) if data.get("exit_code") is not None else None,
            duration=_opt_float(data.get("duration")),
            message=str(data.get("message", ""))[:MAX_MESSAGE],
            open_runs={str(k): float(v) for k, v in dict(runs).items()},
        )


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


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
        state.message = message
        state.duration = now - started if started is not None else None
        if not state.failed:
            state.last_success = now
            if started is not None:
                for other, at in list(state.open_runs.items()):
                    if at < started:
                        del state.open_runs[other]

    # -- the file

    def load(self) -> None:
        if not self.path:
            return
        try:
            data = json.loads(Path(self.path).read_text())
            if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
                raise ValueError("unknown version")
            for name, entry in dict(data.get("checks", {})).items():
                self._states[str(name)] = HeartbeatState.from_dict(entry)
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("heartbeat state %s ignored: %s", self.path, exc)

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
        await asyncio.to_thread(self.load)
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


# ---------------------------------------------------------------- routes


def _answer(status: int, body: bytes) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=NO_STORE)


def _refuse(status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"ok": False, "error": error}).encode()
    return web.Response(
        body=body, status=status, content_type=JSON, headers={**NO_STORE, **(headers or {})}
    )


def _action(text: str) -> tuple[str, int | None] | None:
    if text in ("", "success"):
        return "success", None
    if text in ("start", "fail"):
        return text, None
    # ASCII digits only: `²` and `①` are isdigit() and int() refuses them (a 500), and
    # `٣` (Arabic-Indic three) would read as exit code 3. healthchecks.io routes only
    # [0-9]+ there, so these answer as any other unknown action: 404.
    if text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 255:
        code = int(text)
        return ("success" if code == 0 else "fail"), code
    return None


def add_ping_routes(app: web.Application, inbox: Inbox, token: Callable[[], str]) -> None:
    """`/ping/<check>[/start|/fail|/<exit code>]`, GET and POST; `token()` is read per
    request so a reload that sets `agent.ping_token` takes effect at once."""

    async def ping(request: web.Request) -> web.StreamResponse:
        expected = token()
        if expected:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode("utf-8", "surrogateescape"), expected.encode()
            )
            if not ok:
                return _refuse(401, "unauthorized", {"WWW-Authenticate": 'Bearer realm="probe"'})
        name = request.match_info["check"]
        if not inbox.knows(name):
            return _refuse(404, f"no heartbeat check named {name[:64]!r}")
        action = _action(request.match_info.get("action", ""))
        if action is None:
            return _refuse(404, "expected /ping/<check>, /start, /fail or an exit code 0-255")
        rid = request.query.get("rid", "")[:MAX_RID] if request.query_string else ""
        message = ""
        if request.body_exists:
            raw = await request.content.read(MAX_MESSAGE)
            message = raw.decode("utf-8", "replace")
        kind, code = action
        inbox.record(name, kind, code, rid, message)
        return _answer(200, _OK)

    async def not_allowed(request: web.Request) -> web.StreamResponse:
        return _refuse(405, f"method {request.method} not allowed", {"Allow": "GET, POST"})

    for path in ("/ping/{check}", "/ping/{check}/{action}"):
        app.router.add_route("GET", path, ping)
        app.router.add_route("POST", path, ping)
        app.router.add_route("*", path, not_allowed)
