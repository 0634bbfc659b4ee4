"""The values history keeps: points of one hour, hourly rollups, incidents."""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass, field

from probe.core.model import Status

HOUR = 3600
DAY = 86400

# Status codes on disk: small ints, stable across versions.
STATUS_CODE = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}
# A run inside a maintenance window: kept (latency charts), but its time is left out of
# uptime as unknown time is, whatever its status.
MAINTENANCE_CODE = 3


def hour_of(ts: float) -> int:
    return int(ts // HOUR) * HOUR


def day_of(ts: float) -> int:
    return int(ts // DAY) * DAY


@dataclass(slots=True)
class Chunk:
    """The raw results of one check in one hour, as parallel columns.

    `weight_ms` is the time one result stands for (the check's interval when it ran):
    uptime is the share of that time in pass or warn, so a result every 15 s and one
    every minute count for what they cover, not one each.
    """

    hour: int
    # Arrays, not lists: an hour of a 1 s check is 3,600 results, and during a long
    # outage of the store hours pile up in memory (32 bytes a result, not 150).
    ts_ms: array[int] = field(default_factory=lambda: array("q"))  # since the hour began
    status: array[int] = field(default_factory=lambda: array("q"))
    rt_us: array[int] = field(default_factory=lambda: array("q"))
    weight_ms: array[int] = field(default_factory=lambda: array("q"))

    def add(
        self,
        ts: float,
        status: Status,
        response_time: float,
        weight: float,
        maintenance: bool = False,
    ) -> None:
        # Kept at the precision stored (codec.py): 100 ms and 10 µs are plenty for results
        # seconds apart and a latency chart, and the chunk of a check every 15 s stays
        # near 700 bytes an hour.
        self.ts_ms.append(max(0, min(HOUR * 1000 - 100, round((ts - self.hour) * 10) * 100)))
        self.status.append(MAINTENANCE_CODE if maintenance else STATUS_CODE[status])
        self.rt_us.append(max(0, min(2**40, round(response_time * 1e5) * 10)))
        self.weight_ms.append(max(1, min(2**32 - 1, round(weight * 1000))))

    def merge(self, other: Chunk) -> None:
        """Results of both, in time order, each once (a replay after an outage)."""
        rows = set(zip(self.ts_ms, self.status, self.rt_us, self.weight_ms, strict=True))
        rows |= set(zip(other.ts_ms, other.status, other.rt_us, other.weight_ms, strict=True))
        ordered = sorted(rows)
        self.ts_ms = array("q", (r[0] for r in ordered))
        self.status = array("q", (r[1] for r in ordered))
        self.rt_us = array("q", (r[2] for r in ordered))
        self.weight_ms = array("q", (r[3] for r in ordered))

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(frozen=True, slots=True)
class Rollup:
    """One check over one hour (or day): counts, time up of time known, latency."""

    passed: int = 0
    warned: int = 0
    failed: int = 0
    up_ms: int = 0  # time in pass or warn
    known_ms: int = 0  # time with a result at all
    p50_us: int = 0
    p95_us: int = 0

    @property
    def runs(self) -> int:
        return self.passed + self.warned + self.failed

    @property
    def worst(self) -> Status | None:
        if self.failed:
            return Status.FAIL
        if self.warned:
            return Status.WARN
        return Status.PASS if self.passed else None

    def as_tuple(self) -> tuple[int, int, int, int, int, int, int]:
        return (
            self.passed,
            self.warned,
            self.failed,
            self.up_ms,
            self.known_ms,
            self.p50_us,
            self.p95_us,
        )


@dataclass(frozen=True, slots=True)
class Incident:
    """An alert from firing to resolved; `end` is None while it is still open."""

    check: str
    component: str
    measure: str
    severity: str
    summary: str
    start: float
    end: float | None = None
    source: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, float]:
        return (self.source, self.check, self.component, self.measure, self.start)

    @property
    def id(self) -> str:
        """Stable across restarts and replicas: notes and feed entries refer to it."""
        text = "|".join((self.source, self.check, self.component, self.measure))
        return hashlib.sha256(f"{text}|{self.start:.3f}".encode()).hexdigest()[:16]

    def duration(self, now: float) -> float:
        return max(0.0, (self.end if self.end is not None else now) - self.start)
