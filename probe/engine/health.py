"""The JSON bodies of /health, /ready and /live (docs/endpoints.md), built from results.

Pure functions: the store calls them when results change, and `probe check --format json`
calls the same ones, so both print byte-for-byte the same shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from probe.contract.plugin import CheckConfig
from probe.core.dependencies import blocked_by
from probe.core.model import CheckResult, Health, Observation, Status
from probe.core.times import rfc3339_seconds
from probe.core.units import format_duration


@dataclass(frozen=True, slots=True)
class Entry:
    """A check as the endpoints see it: its config and its effective latest result."""

    config: CheckConfig
    status: Status
    output: str
    result: CheckResult | None
    age: float | None = None  # seconds since the result arrived
    maintenance: bool = False  # inside a maintenance window: noise off, routing unchanged


def effective(
    config: CheckConfig, result: CheckResult | None, now: float, age: float | None = None
) -> Entry:
    """Apply "no result yet" and staleness to the latest result.

    `age` is measured by the caller on a monotonic clock when it has one (the agent's
    store); without it, the wall clock says, which is good enough for one-shot runs.
    """
    if result is None:
        return Entry(config, Status.WARN, "no result yet", None)
    age = now - result.observed_at if age is None else age
    if age > stale_after(config):
        return Entry(
            config,
            Status.FAIL,
            f"stale: last result {format_duration(age)} ago (expected every "
            f"{format_duration(config.interval)})",
            result,
            age,
        )
    return Entry(config, result.status, result.output, result, age)


def stale_after(config: CheckConfig) -> float:
    return 3 * config.interval + config.timeout


def overall(entries: list[Entry]) -> Health:
    if any(e.config.critical and e.status is Status.FAIL for e in entries):
        return Health.UNHEALTHY
    if all(e.status is Status.PASS for e in entries):
        return Health.HEALTHY
    return Health.DEGRADED


def is_ready(entries: list[Entry]) -> bool:
    return all(
        e.result is not None and e.status is not Status.FAIL for e in entries if e.config.critical
    )


def check_entry(entry: Entry, verbose: bool, members: list[Entry] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": entry.config.name, "status": entry.status.value}
    if entry.result is not None and not entry.config.has_members:
        body["responseTime"] = round(entry.result.response_time * 1000)
    if entry.status is not Status.PASS:
        body["output"] = entry.output
    if entry.maintenance:
        body["maintenance"] = True
    if verbose:
        observations = entry.result.observations if entry.result else ()
        body["observations"] = [observation_json(o) for o in observations]
        if members is not None:
            body["members"] = [check_entry(m, verbose=True) for m in members]
    return body


def observation_json(obs: Observation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "component": obs.component or None,
        "measure": obs.measure,
        "value": obs.value,
        "unit": obs.unit.value or None,
        "status": obs.status.value,
        "threshold": obs.threshold,
    }
    if obs.note:
        body["note"] = obs.note
    return body


def member_entries(entry: Entry, now: float) -> list[Entry]:
    """Entries of a group's members, from the group's own latest result (and its age)."""
    results = dict(entry.result.members) if entry.result else {}
    return [effective(m, results.get(m.name), now, entry.age) for m in entry.config.members()]


def health_body(
    entries: list[Entry], version: str, started_at: float, now: float, verbose: bool = False
) -> dict[str, Any]:
    checks = [
        check_entry(e, verbose, member_entries(e, now) if e.config.has_members else None)
        for e in entries
    ]
    if verbose:
        _add_blocked_by(entries, checks, now)
    return {
        "status": overall(entries).value,
        "timestamp": rfc3339_seconds(now),
        "version": version,
        "uptime": int(now - started_at),
        "checks": checks,
    }


def _add_blocked_by(entries: list[Entry], bodies: list[dict[str, Any]], now: float) -> None:
    """`"blocked_by": "redis"` on each check waiting on a failing dependency (`depends_on`)."""
    nested = [m for e in entries if e.config.has_members for m in member_entries(e, now)]
    everything = [*entries, *nested]
    failing = {e.config.name for e in everything if e.status is Status.FAIL}
    depends_on = {e.config.name: e.config.depends_on for e in everything}
    for entry, body in zip(entries, bodies, strict=True):
        parent = blocked_by(entry.config.name, depends_on, failing)
        if parent is not None:
            body["blocked_by"] = parent


def ready_body(entries: list[Entry], now: float) -> dict[str, Any]:
    critical = [e for e in entries if e.config.critical]
    return {
        "status": "ready" if is_ready(entries) else "not_ready",
        "timestamp": rfc3339_seconds(now),
        "checks": [check_entry(e, verbose=False) for e in critical],
    }


def health_bytes(
    status: Health, version: str, started_at: float, now: float, fragments: list[bytes]
) -> bytes:
    """`dumps(health_body(...))` from entries already serialised one by one.

    The store keeps each check's serialised entry until it changes, so a render joins
    bytes instead of serialising every check again; the JSON is the same to the byte.
    """
    head = dumps(
        {
            "status": status.value,
            "timestamp": rfc3339_seconds(now),
            "version": version,
            "uptime": int(now - started_at),
        }
    )
    return b"".join((head[:-1], b',"checks":[', b",".join(fragments), b"]}"))


def ready_bytes(ready: bool, now: float, fragments: list[bytes]) -> bytes:
    """`dumps(ready_body(...))` from the critical checks' serialised entries."""
    head = dumps({"status": "ready" if ready else "not_ready", "timestamp": rfc3339_seconds(now)})
    return b"".join((head[:-1], b',"checks":[', b",".join(fragments), b"]}"))


def live_body(alive: bool, started_at: float, now: float) -> dict[str, Any]:
    return {
        "status": "alive" if alive else "stalled",
        "timestamp": rfc3339_seconds(now),
        "uptime": int(now - started_at),
    }


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
