"""How `probe check` and `probe validate` print: text for people, the /health JSON body,
and one Nagios plugin line."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from probe.contract.config import Config
from probe.contract.plugin import CheckConfig
from probe.core.model import CheckResult, Health, Observation, Status, Unit
from probe.core.units import DEFAULT_SOURCE, Limit, format_duration
from probe.engine import health
from probe.engine.health import Entry

_COLOURS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31"}
_NAGIOS_WORDS = {Health.HEALTHY: "OK", Health.DEGRADED: "WARNING", Health.UNHEALTHY: "CRITICAL"}
_INDENT = "  "
NEEDS_THE_AGENT = "needs the agent:"  # the note of a measure one-shot runs cannot judge


def entries_for(
    checks: Sequence[CheckConfig], results: dict[str, CheckResult], now: float
) -> list[Entry]:
    """The same entries the store builds, so every format judges results the same way."""
    return [health.effective(c, results.get(c.name), now) for c in checks]


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


# ------------------------------------------------------------------ json


def format_json(entries: list[Entry], version: str, started_at: float, now: float) -> str:
    """Exactly the /health body: the functions the store renders it with."""
    return health.dumps(health.health_body(entries, version, started_at, now)).decode()


# ------------------------------------------------------------------ text


def _rows(entries: list[Entry], now: float, depth: int = 0) -> list[tuple[int, Entry]]:
    rows: list[tuple[int, Entry]] = []
    for entry in entries:
        rows.append((depth, entry))
        if entry.config.has_members:
            rows.extend(_rows(health.member_entries(entry, now), now, depth + 1))
    return rows


def format_text(
    entries: list[Entry], overall_health: Health, now: float, elapsed: float, color: bool
) -> str:
    rows = _rows(entries, now)
    name_width = max((len(_INDENT * d + e.config.name) for d, e in rows), default=4)
    lines = []
    for depth, entry in rows:
        indent = _INDENT * depth
        word = entry.status.value.upper()
        if color:
            word = f"\033[{_COLOURS[entry.status]}m{word}\033[0m"
        took = format_duration(entry.result.response_time) if entry.result else "-"
        name = entry.config.name.ljust(name_width - len(indent))
        line = f"{indent}{word}  {name}  {took:>6}"
        if entry.status is not Status.PASS and entry.output:
            line += f"  {entry.output}"
        elif agent_only := _needs_the_agent(entry):
            line += f"  {agent_only}"
        lines.append(line.rstrip())
    lines.append(_summary(entries, overall_health, elapsed))
    return "\n".join(lines)


def _needs_the_agent(entry: Entry) -> str:
    """What one run cannot judge (rates over a window, heartbeat pings), said plainly:
    the check passes on what it could see, and the line says what it could not."""
    notes = dict.fromkeys(
        o.note
        for o in (entry.result.observations if entry.result else ())
        if o.value is None and o.note.startswith(NEEDS_THE_AGENT)
    )
    return "; ".join(notes)


def _summary(entries: list[Entry], overall_health: Health, elapsed: float) -> str:
    counts = {s: sum(1 for e in entries if e.status is s) for s in Status}
    noun = "check" if len(entries) == 1 else "checks"
    text = (
        f"{overall_health.value}: {len(entries)} {noun}, {counts[Status.PASS]} pass, "
        f"{counts[Status.WARN]} warn, {counts[Status.FAIL]} fail in {format_duration(elapsed)}"
    )
    critical = [e.config.name for e in entries if e.config.critical and e.status is Status.FAIL]
    if critical:
        text += f" (critical failing: {', '.join(critical)})"
    return text


# ------------------------------------------------------------------ nagios


def format_nagios(entries: list[Entry], overall_health: Health, now: float) -> str:
    """`PROBE OK - summary | perfdata` in monitoring-plugins syntax."""
    word = _NAGIOS_WORDS[overall_health]
    bad = [e for e in entries if e.status is not Status.PASS]
    if bad:
        summary = f"{overall_health.value}: " + "; ".join(
            f"{e.config.name} {e.status.value}: {e.output}" for e in bad
        )
    else:
        summary = f"{overall_health.value}: {len(entries)} checks pass"
    summary = summary.replace("|", "/")  # a pipe would start the perfdata
    perfdata = " ".join(_perfdata(entries, now))
    return f"PROBE {word} - {summary}" + (f" | {perfdata}" if perfdata else "")


def nagios_unknown(kind: str, problems: list[str]) -> str:
    first = problems[0] if problems else kind
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"PROBE UNKNOWN - {kind}: {first}{more}".replace("|", "/")


def _perfdata(entries: list[Entry], now: float) -> list[str]:
    items: list[str] = []
    for _, entry in _rows(entries, now):
        if entry.result is None:
            continue
        for obs in entry.result.observations:
            if obs.value is None:
                continue
            if obs.measure == "response_time" and not obs.component:
                if entry.config.has_members:
                    continue  # as in /health: a group's time is its slowest member's
                label = f"{entry.config.name}_time"
            else:
                label = _label(entry.config.name, obs)
            items.append(_perf_item(label, obs, *entry.config.limits_for(obs.component)))
    return items


def _label(check: str, obs: Observation) -> str:
    parts = [check]
    # `memory` + `memory_bytes` reads better as `memory_bytes` than `memory_memory_bytes`.
    if obs.component and not (
        obs.measure == obs.component or obs.measure.startswith(f"{obs.component}_")
    ):
        parts.append(obs.component)
    parts.append(obs.measure)
    return "_".join(parts)


def _perf_item(label: str, obs: Observation, warn: dict[str, Limit], fail: dict[str, Limit]) -> str:
    assert obs.value is not None
    scale, uom = _UOM[obs.unit]
    fields = [
        _number(obs.value * scale) + uom,
        _range(warn.get(obs.measure), scale),
        _range(fail.get(obs.measure), scale),
        "0",
    ]
    quoted = label.replace("'", "''").replace("=", "_")
    return f"'{quoted}'=" + ";".join(fields).rstrip(";")


# Unit -> (factor, monitoring-plugins UOM). Ratios print as `%` (0-100); counts of jobs
# and workers are gauges, so no `c` (that UOM is for ever-growing counters).
_UOM: dict[Unit, tuple[float, str]] = {
    Unit.SECONDS: (1.0, "s"),
    Unit.RATIO: (100.0, "%"),
    Unit.BYTES: (1.0, "B"),
    Unit.COUNT: (1.0, ""),
    Unit.NONE: (1.0, ""),
}


def _range(limit: Limit | None, scale: float) -> str:
    """`10` alerts above 10; `10:` alerts below 10 (monitoring-plugins range syntax)."""
    if limit is None:
        return ""
    value = _number(limit.value * scale)
    return f"{value}:" if limit.below else value


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


# ------------------------------------------------------------------ validate


def format_validate(config: Config, path: Path, verbose: bool = False) -> str:
    rows = list(_config_rows(config.checks, 0))
    header = ("NAME", "TYPE", "INTERVAL", "TIMEOUT", "CRITICAL", "TARGET")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = [f"config: {path}"]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append(("  ".join(cells) + "  " + row[5]).rstrip())
    lines.extend(_notifier_lines(config))
    if verbose:
        lines.extend(_limit_lines(config))
    critical = sum(1 for c in config.checks if c.critical)
    lines.append(f"valid: {len(config.checks)} checks ({critical} critical)")
    return "\n".join(lines)


def _config_rows(checks: Sequence[CheckConfig], depth: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for check in checks:
        target = check.target()
        rows.append(
            (
                _INDENT * depth + check.name,
                check.type,
                format_duration(check.interval),
                format_duration(check.timeout),
                "yes" if check.critical else "no",
                target,
            )
        )
        rows.extend(_config_rows(check.members(), depth + 1))
    return rows


def _limit_lines(config: Config) -> list[str]:
    """Every check's effective limits, and the config key or `default` each came from."""
    table: list[tuple[str, ...]] = []
    for check in config.all_checks():
        for row in check.limit_rows():
            subject = f"{row.component} {row.measure}" if row.component else row.measure
            source = row.source
            if source != DEFAULT_SOURCE:
                source = f"{check.key_path}.{source}" if check.key_path else source
            table.append((check.name, row.level, subject, limit_text(row.limit), source))
    if not table:
        return ["limits: none"]
    header = ("CHECK", "LEVEL", "MEASURE", "LIMIT", "FROM")
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(4)]
    lines = ["limits:"]
    for found in [header, *table]:
        cells = [cell.ljust(width) for cell, width in zip(found, widths, strict=False)]
        lines.append((_INDENT + "  ".join(cells) + "  " + found[4]).rstrip())
    return lines


def limit_text(limit: Limit) -> str:
    """A limit as the user writes it: `80%`, `<1`, `5m`."""
    if limit.text:
        return limit.text
    return ("<" if limit.below else "") + format_duration(limit.value)


def _notifier_lines(config: Config) -> list[str]:
    lines = []
    for notifier in config.alerts.notifiers:
        if not notifier.enabled:
            state = "disabled"
        elif notifier.unconfigured():
            state = f"off ({notifier.unconfigured()})"
        else:
            state = "on"
        filters = notifier.filters()
        lines.append(f"notifier: {notifier.type} {state}" + (f" ({filters})" if filters else ""))
    return lines
