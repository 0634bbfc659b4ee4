"""The one interface both backends implement, and the choice between them.

Backends do the I/O of one batch in one transaction and raise `HistoryError` with
words a user can act on; they never log and never decide what to retry (the writer
does). A backend serves one process, but rows carry a `source` (the agent name) so
replicas writing one PostgreSQL each keep their own rows and the view adds them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from probe.core.redact import redact_url
from probe.engine.history.model import Incident, Rollup
from probe.engine.history.retention import Cutoffs


class HistoryError(Exception):
    """The store cannot be used right now: `str()` is one line for people."""


ChunkKey = tuple[str, int]  # (check, hour start)


@dataclass(slots=True)
class Batch:
    """Everything one flush writes, for one source."""

    source: str
    chunks: dict[ChunkKey, bytes] = field(default_factory=dict)
    days: dict[tuple[str, int], bytes] = field(default_factory=dict)  # hourly rollups
    daily: dict[tuple[str, int], Rollup] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.chunks or self.days or self.daily or self.incidents)


@dataclass(slots=True)
class Snapshot:
    """What the view is built from: every source's rollups and the recent incidents."""

    days: list[tuple[str, str, int, bytes]] = field(default_factory=list)  # source, check, day
    daily: list[tuple[str, str, int, Rollup]] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)


class Backend(Protocol):
    description: str  # safe to print: no password

    async def open(self) -> None: ...

    async def write(self, batch: Batch) -> None: ...

    async def reopened(self) -> bool:
        """True once after the store was found removed or replaced and was opened afresh
        (what memory holds is then written again); checked before every batch."""
        ...

    async def read_chunks(self, source: str, keys: list[ChunkKey]) -> dict[ChunkKey, bytes]: ...

    async def load(self, hourly_since: int, daily_since: int, incidents: int) -> Snapshot: ...

    async def prune(self, cutoffs: Cutoffs) -> None: ...

    async def close(self) -> None: ...


def sqlite_path(dsn: str) -> Path | None:
    """`sqlite:///var/lib/probe/history.db` -> that path; None for other schemes."""
    if not dsn.startswith("sqlite://"):
        return None
    return Path(dsn[len("sqlite://") :])


def is_postgres(dsn: str) -> bool:
    return dsn.startswith(("postgresql://", "postgres://"))


def describe(dsn: str) -> str:
    return redact_url(dsn)
