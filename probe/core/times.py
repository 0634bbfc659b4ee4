"""Clocks and the three ways probe writes a moment, all in UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

# Seconds since an epoch: time.time for timestamps people read, time.monotonic for intervals.
Clock = Callable[[], float]


def rfc3339_seconds(ts: float) -> str:
    """`2026-03-01T12:00:05Z`, as the health endpoints show it."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_millis(ts: float) -> str:
    """`2026-03-01T12:00:05.123Z` (truncated, not rounded), for logs and Alertmanager."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def readable_utc(ts: float) -> str:
    """`2026-03-01 12:00:05 UTC`, for messages people read."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
