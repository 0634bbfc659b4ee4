"""What the agent remembers of one heartbeat check's pings, and its file.

`<agent.state_file>.heartbeats.json` is read through `probe.core.statefile` (regular file only,
bounded, off the loop, NaN refused), and every value is checked as if a stranger wrote
it: a `last_success` of infinity or in the future would make the dead-man's switch pass
with no pings at all, and 300,000 open runs would make every run crawl.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from probe.core import statefile

MAX_MESSAGE = 10 * 1024  # bytes of a ping's body kept as the last message
MAX_OPEN_RUNS = 64  # per check: overlapping runs beyond this are a runaway, not a schedule
MAX_CHECKS = 100_000  # far above any config; a file with more is not ours
FORMAT_VERSION = 1
WHAT = "heartbeat state file"
WITHOUT = "heartbeat checks start waiting afresh"

# Control characters other than tab and newline (NUL from a binary body, terminal escapes)
# would travel into outputs, alerts, logs and the status page.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_message(text: str) -> str:
    return _CONTROL.sub("\ufffd", text)


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
    def from_dict(cls, data: dict[str, Any], now: float) -> HeartbeatState:
        runs = data.get("open_runs", {})
        if not isinstance(runs, dict):
            raise ValueError("open_runs is not a map")
        code = data.get("exit_code")
        if code is not None and (type(code) is not int or not 0 <= code <= 255):
            raise ValueError("exit_code is not 0-255")
        state = cls(
            since=_time(data["since"]),
            last_success=_opt_time(data.get("last_success")),
            last_start=_opt_time(data.get("last_start")),
            last_end=_opt_time(data.get("last_end")),
            failed=data.get("failed", False) is True,
            exit_code=code,
            duration=_opt_time(data.get("duration")),
            message=clean_message(str(data.get("message", ""))[:MAX_MESSAGE]),
            # The newest runs, as recording keeps them.
            open_runs=dict(
                sorted(((str(k), _time(v)) for k, v in runs.items()), key=lambda kv: kv[1])[
                    -MAX_OPEN_RUNS:
                ]
            ),
        )
        for name in ("since", "last_success", "last_start", "last_end"):
            statefile.check_not_future(getattr(state, name), now, name)
        for at in state.open_runs.values():
            statefile.check_not_future(at, now, "an open run's start")
        return state


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r:.40} is not a time")
    return float(value)


def _opt_time(value: object) -> float | None:
    return None if value is None else _time(value)


def parse(data: Any, now: float) -> dict[str, HeartbeatState]:
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError("not a probe heartbeat state file (unknown version)")
    checks = data.get("checks", {})
    if not isinstance(checks, dict) or len(checks) > MAX_CHECKS:
        raise ValueError("checks is not a map of at most 100,000 checks")
    states = {}
    for name, entry in checks.items():
        if not isinstance(entry, dict):
            raise ValueError(f"check {name[:64]!r} is not a map")
        try:
            states[name] = HeartbeatState.from_dict(entry, now)
        except KeyError as exc:
            raise ValueError(f"check {name[:64]!r}: {exc} is missing") from None
        except (ValueError, statefile.StateFileError) as exc:
            raise ValueError(f"check {name[:64]!r}: {exc}") from None
    return states


async def load(path: str, now: float) -> dict[str, HeartbeatState]:
    """The saved states; empty when there is no file or it cannot be used (one line)."""
    found = await statefile.load_off_loop(path, WHAT, lambda data: parse(data, now), WITHOUT)
    return found or {}
