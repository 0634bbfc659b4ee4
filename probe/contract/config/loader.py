"""File -> validated `Config`: sections, then checks and notifiers by their registered
models, then the rules that span entries. All problems are collected before giving up,
so a user fixes a broken file in one pass."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from probe.contract.config import rules
from probe.contract.config.errors import ConfigError, join_key, pydantic_problems, shown_value
from probe.contract.config.schema import AgentConfig, AlertsConfig, Config
from probe.contract.config.source import expand_tree, parse_yaml, read_text
from probe.contract.plugin import (
    BUILT_IN_DEFAULTS,
    INHERITED_KEYS,
    CheckConfig,
    Defaults,
    NotifierConfig,
)
from probe.contract.plugins import (
    CHECK_TYPES,
    NOTIFIER_TYPES,
    check_config_model,
    notifier_config_model,
)
from probe.core.fields import StrictModel
from probe.core.maintenance import WindowConfig

_SECTIONS: dict[str, type[StrictModel]] = {
    "agent": AgentConfig,
    "defaults": Defaults,
    "alerts": AlertsConfig,
}
_SECTION_SECRETS = {"agent": frozenset({"auth_token", "ping_token", "admin_token", "headers"})}


def load_config(path: Path, environ: dict[str, str] | None = None) -> Config:
    """The validated config, or ConfigError with one line per problem, whatever the file
    holds: a YAML construct that PyYAML or pydantic choke on is a problem line too."""
    text = read_text(path)
    try:
        raw = parse_yaml(text, str(path))
        env = dict(os.environ) if environ is None else environ
        problems: list[str] = []
        expanded = expand_tree(raw, "", env, problems)
        if problems:
            raise ConfigError([f"{path}: {p}" for p in problems])
        return _validate(expanded, str(path))
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError([f"{path}: nested too deeply to be a probe config"]) from None
    except MemoryError:
        raise ConfigError([f"{path}: too large once expanded (YAML aliases?)"]) from None
    except ImportError as exc:
        # Not the file's fault: a check's code cannot be imported (another interpreter, a
        # half-finished upgrade). Saying "YAML" would send the operator hunting in the file.
        missing = exc.name or str(exc)
        raise ConfigError(
            [f"probe's installation is broken: cannot import {missing}; reinstall probe"]
        ) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # int() refuses over 4,300 digits
            raise ConfigError(
                [f"{path}: a number is too long (more than 4,300 digits); is this the config?"]
            ) from None
        raise ConfigError([_unreadable(path)]) from None
    except Exception:  # the fuzzer's finds: !!float 5s, complex keys
        raise ConfigError([_unreadable(path)]) from None


def _unreadable(path: Path) -> str:
    return f"{path}: cannot be read as a probe config (an unusual YAML tag or key?)"


def load_or_report(path: Path) -> Config | None:
    """For commands: the config, or None after printing each problem on stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _validate(raw: dict[str, Any], source: str) -> Config:
    # Each section is validated on its own, so one broken section does not hide the
    # problems of the others: the user fixes the file in one pass.
    problems = [
        f"{join_key('', key)}: unknown key"
        for key in raw
        if key not in (*_SECTIONS, "checks", "maintenance")
    ]
    sections: dict[str, Any] = {}
    for key, model in _SECTIONS.items():
        value = raw.get(key)
        value = {} if value is None else value
        if key == "alerts" and isinstance(value, dict):
            value = {**value, "notifiers": _validate_notifiers(value.get("notifiers"), problems)}
        try:
            sections[key] = model.model_validate(value)
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, key, _SECTION_SECRETS.get(key, ())))
    defaults: Defaults = sections.get("defaults", BUILT_IN_DEFAULTS)
    checks = _validate_checks(
        _entry_list(raw.get("checks"), "checks", "checks", problems),
        "checks",
        defaults.model_dump(),
        problems,
    )
    known = rules.unique_names(checks, problems)
    problems += rules.dependency_problems(checks, known)
    problems += rules.named_check_problems(checks)
    alerts: AlertsConfig | None = sections.get("alerts")
    if alerts is not None:
        problems += rules.unknown_check_references(alerts, known)
    maintenance = _validate_windows(raw.get("maintenance"), problems)
    problems += rules.unknown_window_checks(maintenance, known)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    # Every part is validated above by its own model; Config's own validation would only
    # check their classes again, after building a validator for the whole tree.
    return Config.model_construct(
        source=source,
        agent=sections["agent"],
        checks=rules.linked(checks),
        alerts=sections["alerts"],
        maintenance=maintenance,
    )


def alerts_from_dict(raw: dict[str, Any]) -> AlertsConfig:
    """The `alerts:` section on its own, notifiers validated by their registered models."""
    problems: list[str] = []
    notifiers = _validate_notifiers(raw.get("notifiers"), problems)
    if problems:
        raise ConfigError(problems)
    return AlertsConfig.model_validate({**raw, "notifiers": notifiers})


def _entry_list(value: Any, path: str, what: str, problems: list[str]) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{path}: expected a list of {what}, got {shown_value(value)}")
        return []
    entries = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            entries.append(item)
        else:
            problems.append(f"{path}[{i}]: expected a map of key: value, got {shown_value(item)}")
    return entries


def _validate_notifiers(value: Any, problems: list[str]) -> list[NotifierConfig]:
    path = "alerts.notifiers"
    notifiers: list[NotifierConfig] = []
    for i, raw in enumerate(_entry_list(value, path, "notifiers", problems)):
        here = f"{path}[{i}]"
        kind = raw.get("type")
        if not isinstance(kind, str) or kind not in NOTIFIER_TYPES:
            known = ", ".join(sorted(NOTIFIER_TYPES))
            if kind is None:
                problems.append(f"{here}: required key `type` is missing (known: {known})")
            else:
                problems.append(f"{here}: unknown type {kind!r} (known: {known})")
            continue
        model = notifier_config_model(kind)
        try:
            notifiers.append(model.model_validate(raw))
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, here, model.secret_fields))
    return notifiers


def _validate_windows(value: Any, problems: list[str]) -> list[WindowConfig]:
    windows: list[WindowConfig] = []
    for i, raw in enumerate(_entry_list(value, "maintenance", "windows", problems)):
        try:
            windows.append(WindowConfig.model_validate(raw))
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, f"maintenance[{i}]", ()))
    return windows


def _validate_checks(
    raws: list[dict[str, Any]], path: str, inherited: dict[str, Any], problems: list[str]
) -> list[CheckConfig]:
    checks: list[CheckConfig] = []
    for i, raw in enumerate(raws):
        here = f"{path}[{i}]"
        kind = raw.get("type")
        if not isinstance(kind, str) or kind not in CHECK_TYPES:
            known = ", ".join(sorted(CHECK_TYPES))
            got = "missing" if kind is None else repr(kind)
            problems.append(f"{here}.type: unknown check type {got} (known: {known})")
            continue
        entry = {**inherited, **raw}
        model = check_config_model(kind)
        if model.has_members:
            members_raw = entry.get("checks")
            if not isinstance(members_raw, list) or not all(
                isinstance(m, dict) for m in members_raw
            ):
                problems.append(f"{here}.checks: expected a list of checks")
                continue
            member_defaults: dict[str, Any] = {k: entry[k] for k in INHERITED_KEYS if k in entry}
            found_before = len(problems)
            entry["checks"] = _validate_checks(
                members_raw, f"{here}.checks", member_defaults, problems
            )
            if len(problems) > found_before:
                continue  # the members' own lines say what is wrong; the group adds nothing
        try:
            check = model.model_validate(entry)
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, here, model.secret_fields))
            continue
        # Disabled checks are validated (a typo should still be caught) but never run.
        if check.enabled:
            checks.append(check.located(here))
    return checks
