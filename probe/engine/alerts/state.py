"""The alert state file: firing keys and undelivered notifications, written atomically.

Written to a temp file in the same directory and renamed over the old one, so a crash
mid-write leaves the previous state, never half a file. A file that cannot be read or
parsed is logged and ignored (`probe.core.statefile` reads it), and a failed write is reported
to the caller: losing alert state must never stop the agent.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.contract.notification import Notification
from probe.core import statefile

# 2: alert keys gained `measure` (and quiet-hours fields). A version-1 file loads as is:
# its keys have measure "" and the engine hands each to the first measure of its
# component that is still non-pass, so no firing alert is lost or notified twice.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(slots=True)
class SavedState:
    alerts: list[dict[str, Any]] = field(default_factory=list)  # AlertState.to_dict() each
    outbox: dict[str, list[Notification]] = field(default_factory=dict)  # notifier id -> queue
    saved_at: float = 0.0
    maintenance: list[dict[str, Any]] = field(default_factory=list)  # run-time windows
    notes: list[dict[str, Any]] = field(default_factory=list)  # incident notes

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": FORMAT_VERSION,
                "saved_at": self.saved_at,
                "alerts": self.alerts,
                "outbox": {k: [n.to_dict() for n in v] for k, v in self.outbox.items()},
                "maintenance": self.maintenance,
                "notes": self.notes,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> SavedState:
        # NaN and Infinity are not JSON: a notification created at NaN would never age out
        # and would block its notifier's queue for good.
        return cls.from_data(statefile.parse_json(text))

    @classmethod
    def from_data(cls, data: Any) -> SavedState:
        if not isinstance(data, dict) or data.get("version") not in READABLE_VERSIONS:
            raise ValueError("not a probe alert state file (unknown version)")
        alerts = data.get("alerts", [])
        outbox = data.get("outbox", {})
        maintenance = data.get("maintenance", [])
        notes = data.get("notes", [])
        if not isinstance(alerts, list) or not isinstance(outbox, dict):
            raise ValueError("alerts must be a list and outbox a map")
        for name, entries in (("maintenance", maintenance), ("notes", notes)):
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ValueError(f"{name} must be a list of maps")
        return cls(
            alerts=[dict(a) for a in alerts],
            outbox={str(k): [Notification.from_dict(n) for n in v] for k, v in outbox.items()},
            saved_at=float(data.get("saved_at", 0.0)),
            maintenance=maintenance,
            notes=notes,
        )


def save_state(path: str | Path, state: SavedState) -> str | None:
    """Write atomically; None when written, else why not in plain words.

    The caller decides how often to say so: a read-only volume fails every write, and
    one log line per failure would flood the log (see AlertService).
    """
    target = Path(path)
    tmp_name = ""
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where the directory should be
            return os.strerror(errno.ENOTDIR)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(state.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        return None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the configured path
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


WHAT = "alert state file"
WITHOUT = "alerts start from scratch"


def load_state(path: str | Path) -> SavedState | None:
    """The saved state, or None when there is none or it is unusable (one line logged)."""
    return statefile.load(path, WHAT, SavedState.from_data, WITHOUT)


async def load_state_off_loop(path: str | Path) -> SavedState | None:
    """`load_state` off the event loop and bounded in time: a state file on a hung volume
    must not keep the agent from serving (or from stopping)."""
    return await statefile.load_off_loop(path, WHAT, SavedState.from_data, WITHOUT)
