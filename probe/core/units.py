"""Parsing and printing of durations, percentages, counts and limits."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field


class Unit(enum.StrEnum):
    """How a measured value is expressed; decides how it is printed."""

    SECONDS = "s"
    RATIO = "ratio"
    BYTES = "bytes"
    COUNT = "count"
    NONE = ""


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# A bare number is seconds, as in `timeout: 5`; the unit is what people normally write.
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
# Longer than any sensible interval, and small enough for every timer and scheduler.
MAX_DURATION = 365 * 86400.0
_DURATION_WORDS = "expected a duration like 5s or 500ms"
_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_NUMBER_RE = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$")


def parse_duration(value: object) -> float:
    """`500ms`, `5s`, `5m`, `4h`, `14d` -> seconds. Plain numbers are seconds."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{_DURATION_WORDS}, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"{_DURATION_WORDS}, at most 365d, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form: 3ms, 2s, 1.5s, 7m12s, 4h, 14d (negative: -2d3h, as for an
    expired certificate)."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    whole = round(seconds)
    for size, unit, sub_size, sub_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if whole >= size:
            major, rest = divmod(whole, size)
            minor = rest // sub_size
            return f"{major}{unit}{minor}{sub_unit}" if minor else f"{major}{unit}"
    return f"{whole}s"  # pragma: no cover - unreachable, kept for mypy


def timed_out_after(seconds: float) -> str:
    """The words of every deadline that passed, whoever waited: `timed out after 10s`."""
    return f"timed out after {format_duration(seconds)}"


def format_value(value: float, unit: Unit) -> str:
    if unit is Unit.SECONDS:
        return format_duration(value)
    if unit is Unit.RATIO:
        percent = value * 100
        return f"{percent:.0f}%" if percent >= 1 or percent == 0 else f"{percent:.1f}%"
    if unit is Unit.BYTES:
        return format_bytes(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def format_bytes(value: float) -> str:
    size = float(value)
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f}{suffix}" if suffix == "B" else f"{size:.1f}{suffix}"
        size /= 1024
    return f"{size:.1f}TiB"


# Where a limit comes from when no config key set it: the check type's own defaults.
DEFAULT_SOURCE = "default"
OFF = "off"


@dataclass(frozen=True, slots=True)
class Limit:
    """One threshold: `1000`, `500ms`, `80%` (above is bad) or `<1`, `<14d` (below is bad).

    `off` is a user's `warn: {measure: off}`: it switches the type's default off and is
    never breached. `source` is `default` for a check type's built-in limits.
    """

    value: float
    below: bool = False
    text: str = ""
    off: bool = False
    source: str = field(default="", compare=False)

    def breached(self, observed: float) -> bool:
        if self.off:
            return False
        return observed < self.value if self.below else observed > self.value

    def describe(self, unit: Unit) -> str:
        """The limit as a user reads it next to a value: `> 1,000`, `< 14d`."""
        if self.off:
            return OFF
        return f"{'<' if self.below else '>'} {format_value(self.value, unit)}"


def parse_limit(raw: object) -> Limit:
    """Parse a threshold value from the config: a number, duration or percentage, with a
    leading `<` when below the limit is bad."""
    problem = ValueError(f"expected a limit like 1000, 500ms, 80%, <1 or off, got {raw!r}")
    # YAML 1.1 reads a bare `off` (and `no`, `false`) as false.
    if raw is False or (isinstance(raw, str) and raw.strip().lower() == OFF):
        return Limit(0.0, text=OFF, off=True)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise problem
    text = str(raw).strip()
    below = text.startswith("<")
    body = text[1:].strip() if below else text
    percent = _PERCENT_RE.match(body)
    try:
        if percent:
            value = float(percent.group(1)) / 100
        elif _NUMBER_RE.match(body):
            value = float(body)
        else:
            value = parse_duration(body)
    except ValueError:
        raise problem from None
    if not math.isfinite(value):
        raise problem
    return Limit(value, below=below, text=text)
