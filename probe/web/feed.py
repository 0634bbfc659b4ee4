"""`/status/feed.atom`: incidents, their notes and maintenance windows as an Atom feed.

Atom (RFC 4287) rather than RSS: every entry has a stable `id` and an `updated` time, so a
reader shows an incident once and marks it changed when it resolves. Ids are tag URIs
built from the incident's, note's or window's own id, stable across restarts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from probe.core.incident_notes import Note
from probe.core.maintenance import Window
from probe.core.times import readable_utc, rfc3339_seconds
from probe.core.units import format_duration
from probe.engine.history.model import Incident

ATOM = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 100
# Characters XML 1.0 cannot carry at all, not even escaped (a NUL in a check's output).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(" ", text)


@dataclass(frozen=True, slots=True)
class _Entry:
    id: str
    title: str
    updated: float
    text: str


def _subject(incident: Incident) -> str:
    subject = incident.check + (f"/{incident.component}" if incident.component else "")
    return f"{subject} {incident.measure}" if incident.measure else subject


def _incident(tag: str, incident: Incident, now: float) -> _Entry:
    if incident.end is None:
        state = f"ongoing since {readable_utc(incident.start)}"
    else:
        state = f"resolved after {format_duration(incident.duration(now))}"
    return _Entry(
        f"{tag}/incident/{incident.id}",
        f"{incident.severity}: {_subject(incident)} ({state})",
        incident.end if incident.end is not None else incident.start,
        f"{incident.summary}\nstarted {readable_utc(incident.start)}; {state}",
    )


def _note(tag: str, note: Note, incident: Incident | None) -> _Entry:
    about = _subject(incident) if incident is not None else "an incident"
    return _Entry(f"{tag}/note/{note.id}", f"update on {about}", note.at, note.text)


def _window(tag: str, window: Window) -> _Entry:
    covered = ", ".join(window.checks) or "every check"
    span = f"{readable_utc(window.start)} to {readable_utc(window.end)}"
    reason = window.reason or "planned maintenance"
    return _Entry(
        f"{tag}/maintenance/{window.id}",
        f"maintenance: {reason} ({covered})",
        window.start,
        f"{reason}\n{covered}: {span}" + (" (ended early)" if window.closed else ""),
    )


def atom_feed(
    agent: str,
    self_url: str,
    now: float,
    incidents: Iterable[Incident],
    notes: Iterable[Note],
    windows: Iterable[Window],
) -> bytes:
    tag = f"tag:probe,2026:{quote(agent)}"
    known = {i.id: i for i in incidents}
    entries = [
        *(_incident(tag, i, now) for i in known.values()),
        *(_note(tag, n, known.get(n.incident)) for n in notes),
        *(_window(tag, w) for w in windows if w.start <= now),
    ]
    entries.sort(key=lambda e: (e.updated, e.id), reverse=True)
    entries = entries[:MAX_ENTRIES]

    # ElementTree (with pyexpat) is half a megabyte every agent would hold from its start;
    # only a feed reader asks for it (issue 28).
    import xml.etree.ElementTree as ET

    feed = ET.Element("feed", xmlns=ATOM)
    sub = ET.SubElement
    sub(feed, "id").text = tag
    sub(feed, "title").text = _xml_text(f"{agent} status")
    sub(feed, "updated").text = rfc3339_seconds(entries[0].updated if entries else now)
    sub(sub(feed, "author"), "name").text = agent
    sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    for entry in entries:
        item = sub(feed, "entry")
        sub(item, "id").text = entry.id
        sub(item, "title").text = _xml_text(entry.title)
        sub(item, "updated").text = rfc3339_seconds(entry.updated)
        sub(item, "content", type="text").text = _xml_text(entry.text)
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))
