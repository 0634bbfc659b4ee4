"""What the web reads of the rest of the agent: narrow, read-only views.

The results store satisfies `HealthBodies` and `CurrentStates`, the history writer
`Rollups`, the heartbeat inbox `PingReceiver`; the handlers see nothing else of them.
Settings come from `probe.web.settings`, never from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Protocol

from probe.core.incident_notes import Note
from probe.core.maintenance import Window
from probe.core.model import Health
from probe.engine.health import Entry
from probe.engine.history.model import Incident, Rollup
from probe.engine.store import Rendered, Snapshot


class HealthBodies(Protocol):
    """The bodies of /health, /ready and /live, rendered by the store."""

    @property
    def health(self) -> Rendered: ...

    @property
    def health_verbose(self) -> Rendered: ...

    @property
    def ready(self) -> Rendered: ...

    @property
    def live(self) -> Rendered: ...

    async def refresh(self) -> None:
        """Render the bodies if due, handing the loop back between slices."""
        ...

    @property
    def last_health(self) -> Rendered:
        """/health as last rendered (after `refresh`), without rendering."""
        ...

    @property
    def last_ready(self) -> Rendered: ...

    def stalled_live(self) -> Rendered: ...

    def is_alive(self, live_timeout: float) -> bool: ...

    def derived(self, key: Hashable, build: Callable[[Snapshot], Rendered]) -> Rendered: ...

    def entry(self, name: str) -> Entry | None: ...

    def fragment(self, entry: Entry) -> bytes: ...

    def check_names(self) -> list[str]: ...


class CurrentStates(Protocol):
    """Where each top-level check stands now, for the status page."""

    @property
    def overall(self) -> Health: ...

    def entries(self, now: float | None = None) -> list[Entry]: ...


class Rollups(Protocol):
    """The history writer's in-memory rollups and incidents."""

    @property
    def merged(self) -> dict[str, dict[int, Rollup]]: ...

    @property
    def merged_days(self) -> dict[str, dict[int, Rollup]]: ...

    @property
    def daily(self) -> dict[str, dict[int, Rollup]]: ...

    @property
    def generation(self) -> int: ...

    @property
    def available(self) -> bool: ...

    @property
    def problem(self) -> str: ...

    def incidents(self) -> list[Incident]: ...


class PingReceiver(Protocol):
    """Where /ping/<check> records."""

    def knows(self, name: str) -> bool: ...

    def record(
        self, name: str, kind: str, exit_code: int | None, rid: str, message: str
    ) -> None: ...


class Unavailable(Exception):
    """A planner write could not be kept (a fleet's shared store is unreachable), and
    nothing changed: one line for the 503."""


class Planner(Protocol):
    """Maintenance windows and incident notes; the alert service keeps and saves them, and
    in a fleet the shared store too (writes raise `Unavailable` when it cannot)."""

    def windows(self, now: float) -> list[Window]: ...

    def applies(self, window: Window, check: str) -> bool: ...

    async def open_window(self, checks: list[str], duration: float, reason: str) -> Window: ...

    async def close_window(self, window_id: str) -> Window | None: ...

    def notes(self) -> list[Note]: ...

    async def add_note(self, incident: str, text: str) -> Note: ...
