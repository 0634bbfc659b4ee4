"""How long each kind of history is kept (docs/history.md), and what to prune when."""

from __future__ import annotations

from dataclasses import dataclass

from probe.engine.history.model import DAY, HOUR, day_of, hour_of

RAW_KEEP = 48 * HOUR
HOURLY_KEEP = 90 * DAY
DAILY_KEEP = 400 * DAY
PRUNE_INTERVAL = HOUR  # pruning is cheap; once an hour keeps the files near their bound


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows keyed before these moments are deleted (hour and day starts, unix seconds)."""

    raw_hour: int
    hourly_day: int
    daily_day: int
    incidents: float


def cutoffs(now: float) -> Cutoffs:
    return Cutoffs(
        raw_hour=hour_of(now - RAW_KEEP),
        hourly_day=day_of(now - HOURLY_KEEP),
        daily_day=day_of(now - DAILY_KEEP),
        # Incidents are few and are what people look back at: kept as long as daily bars.
        incidents=now - DAILY_KEEP,
    )
