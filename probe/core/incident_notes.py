"""Incident notes: the words a person adds to an incident for the status page and its feed.

Kept with the alert state (the state file, and across reloads), bounded in count and
length: the admin API is the only writer, and a script in a loop must not grow the file
without end.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

MAX_NOTES = 500
MAX_TEXT = 2000


def clean_text(text: str) -> str:
    """One paragraph of printable text: control characters (NUL included) become spaces."""
    kept = "".join(c if c.isprintable() or c == "\n" else " " for c in text)
    return kept.strip()[:MAX_TEXT]


@dataclass(frozen=True, slots=True)
class Note:
    id: str
    incident: str  # the incident's id (`Incident.id`)
    text: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Note:
        at = float(data["at"])
        if not math.isfinite(at):
            raise ValueError("at must be a finite time")
        text = clean_text(str(data["text"]))
        if not text:
            raise ValueError("text is empty")
        return cls(str(data["id"])[:64], str(data["incident"])[:64], text, at)


def new_note(incident: str, text: str, now: float) -> Note:
    return Note(uuid.uuid4().hex[:12], incident, clean_text(text), now)


def bounded(notes: Iterable[Note]) -> list[Note]:
    """The newest MAX_NOTES, oldest first."""
    return sorted(notes, key=lambda n: (n.at, n.id))[-MAX_NOTES:]


class IncidentNotes:
    def __init__(self) -> None:
        self.notes: list[Note] = []
        self.version = 0  # bumped on every change worth persisting

    def add(self, incident: str, text: str, now: float) -> Note:
        note = new_note(incident, text, now)
        self.put(note)
        return note

    def put(self, note: Note) -> None:
        self.notes = [*(n for n in self.notes if n.id != note.id), note][-MAX_NOTES:]
        self.version += 1

    def replace(self, notes: Iterable[Note]) -> bool:
        """Take the notes a fleet shares (its store is the truth); True when they differ."""
        kept = bounded(notes)
        if kept == self.notes:
            return False
        self.notes = kept
        self.version += 1
        return True

    def of(self, incident: str) -> list[Note]:
        """The notes of one incident, oldest first."""
        return [n for n in self.notes if n.incident == incident]

    def export(self) -> list[dict[str, Any]]:
        return [n.to_dict() for n in self.notes]

    def restore(self, saved: Iterable[Mapping[str, Any]]) -> list[str]:
        """Take notes from a state file; one problem line per entry refused."""
        problems = []
        for i, data in enumerate(saved):
            try:
                self.notes.append(Note.from_dict(data))
            except KeyError as exc:
                problems.append(f"notes[{i}]: missing {exc.args[0]}")
            except (TypeError, ValueError) as exc:
                problems.append(f"notes[{i}]: {exc}")
        del self.notes[:-MAX_NOTES]
        return problems

    def carry(self, previous: IncidentNotes) -> None:
        self.notes = list(previous.notes)
        self.version = previous.version
