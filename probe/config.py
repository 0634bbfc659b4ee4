"""YAML config -> ${VAR} expansion -> validated, typed objects.

Every problem becomes one line `file: key.path: what is wrong`, and all of them are
collected before giving up, so a user fixes a broken file in one pass.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from probe.redact import redact_url, url_secrets
from probe.units import Limit, parse_duration, parse_limit

DEFAULT_CONFIG_PATH = Path("config/probe.yaml")
MAX_NAME_LENGTH = 64
MIN_LIVE_TIMEOUT = 3.0  # seconds; a few scheduler heartbeats (one per second)
MAX_CONFIG_BYTES = 1024 * 1024  # far above any real config; stops `-c /dev/zero` early
NAME_RE = re.compile(r"^[a-z0-9_-]+$")


class ConfigError(Exception):
    """One or more problems, each already a complete line for the user."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ---------------------------------------------------------------- value types

Duration = Annotated[float, BeforeValidator(parse_duration)]


def _parse_limits(raw: object) -> dict[str, Limit]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"expected a map of measure: limit, got {raw!r}")
    limits: dict[str, Limit] = {}
    for measure, value in raw.items():
        try:
            limits[str(measure)] = parse_limit(value)
        except ValueError as exc:
            raise ValueError(f"{measure}: {exc}") from None
    return limits


Limits = Annotated[dict[str, Limit], BeforeValidator(_parse_limits)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


# ---------------------------------------------------------------- checks


class Defaults(StrictModel):
    """The `defaults:` section: timing each check takes unless it sets its own."""

    interval: Duration = 15.0
    timeout: Duration = 5.0
    window: Duration = 300.0


_BUILT_IN = Defaults()
# The keys a group hands down to its members, as the `defaults:` section does to checks.
_INHERITED_KEYS = tuple(Defaults.model_fields)


class CheckConfig(StrictModel):
    """Fields every check type takes. Each check module subclasses this."""

    # Measures this type can be given thresholds for; subclasses extend the set.
    measures: ClassVar[frozenset[str]] = frozenset({"response_time", "error_rate"})
    # True for types whose `checks:` key holds nested checks (group).
    nested: ClassVar[bool] = False

    name: str
    type: str
    interval: Duration = _BUILT_IN.interval
    # Validated even when defaulted: 5s is no good beside `interval: 2s`.
    timeout: Duration = Field(default=_BUILT_IN.timeout, validate_default=True)
    critical: bool = False
    enabled: bool = True
    warn: Limits = Field(default_factory=dict)
    fail: Limits = Field(default_factory=dict)
    window: Duration = _BUILT_IN.window

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"must match [a-z0-9_-]+, got {value!r}")
        if len(value) > MAX_NAME_LENGTH:
            # Names are metric labels, alert keys and Slack text: keep them readable.
            raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters, got {len(value)}")
        return value

    @field_validator("warn", "fail")
    @classmethod
    def _known_measures(cls, value: dict[str, Limit]) -> dict[str, Limit]:
        for measure in value:
            if measure not in cls.measures:
                known = ", ".join(sorted(cls.measures))
                raise ValueError(f"unknown measure {measure!r} (known: {known})")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_below_interval(cls, timeout: float, info: ValidationInfo) -> float:
        # A field validator, so the error is located at `timeout` itself; `interval` is
        # declared first and is in `info.data` whenever it was valid.
        if timeout <= 0:
            raise ValueError("timeout must be greater than 0")
        interval = info.data.get("interval")
        if interval is not None and timeout >= interval:
            raise ValueError(
                f"timeout ({timeout:g}s) must be shorter than interval ({interval:g}s)"
            )
        return timeout

    def limits_for(self, component: str) -> tuple[dict[str, Limit], dict[str, Limit]]:
        """(warn, fail) limits for one component; types with per-component overrides extend."""
        return self.warn, self.fail

    def target(self) -> str:
        """What this check talks to, safe to print (secrets redacted)."""
        return ""

    def secrets(self) -> list[str]:
        """Every secret string in this check's fields, for redaction."""
        return []

    def members(self) -> list[CheckConfig]:
        return []


# ---------------------------------------------------------------- agent, alerts


class AgentConfig(StrictModel):
    name: str = "probe"
    version: str = "0.0.0"
    listen: str = "0.0.0.0:8080"
    live_timeout: Duration = 30.0
    state_file: str = ""
    auth_token: SecretStr = SecretStr("")

    @field_validator("live_timeout")
    @classmethod
    def _longer_than_heartbeats(cls, value: float) -> float:
        # The scheduler ticks every second; anything shorter would report a healthy agent
        # as stalled and have it restarted forever.
        if value < MIN_LIVE_TIMEOUT:
            raise ValueError(f"must be at least {MIN_LIVE_TIMEOUT:g}s, got {value:g}s")
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port like 0.0.0.0:8080, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class SeverityDurations(StrictModel):
    warn: Duration = 300.0
    fail: Duration = 60.0


class SeverityOverrides(StrictModel):
    warn: Duration | None = None
    fail: Duration | None = None


class AlertOverride(StrictModel):
    for_: SeverityOverrides = Field(default_factory=SeverityOverrides, alias="for")
    resolve_after: int | None = Field(default=None, ge=1, le=1000)
    repeat: Duration | None = None
    enabled: bool = True


class Silence(StrictModel):
    checks: list[str]
    start: datetime
    end: datetime
    comment: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Silence:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a timezone, e.g. 2026-12-01T02:00:00Z")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class SlackNotifierConfig(StrictModel):
    type: Literal["slack"]
    enabled: bool = True
    webhook_url: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    channel: str = ""
    # Web API base for token + channel; only changed for Slack-compatible gateways and tests.
    api_url: str = "https://slack.com/api/"
    timeout: Duration = 10.0

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not _is_http_url(url):
            raise ValueError("expected an https:// URL like https://hooks.slack.com/services/...")
        return value

    @model_validator(mode="after")
    def _one_way_to_post(self) -> SlackNotifierConfig:
        has_hook = bool(self.webhook_url.get_secret_value())
        has_token = bool(self.token.get_secret_value())
        if has_hook and has_token:
            raise ValueError("set either webhook_url or token + channel, not both")
        if has_token and not self.channel:
            raise ValueError("token needs a channel")
        return self

    @property
    def configured(self) -> bool:
        """An empty webhook URL (unset env var with empty default) turns Slack off."""
        return bool(self.webhook_url.get_secret_value() or self.token.get_secret_value())

    def secrets(self) -> list[str]:
        hook = self.webhook_url.get_secret_value()
        return [s for s in (hook, self.token.get_secret_value()) if s] + url_secrets(hook)


class AlertmanagerNotifierConfig(StrictModel):
    type: Literal["alertmanager"]
    enabled: bool = True
    urls: list[str] = Field(min_length=1)
    timeout: Duration = 10.0
    resend: Duration = 60.0

    configured: ClassVar[bool] = True

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not _is_http_url(url):
                shown = redact_url(url)
                raise ValueError(f"expected URLs like http://alertmanager:9093, got {shown!r}")
        return value

    def secrets(self) -> list[str]:
        return [s for url in self.urls for s in url_secrets(url)]


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


NotifierConfig = Annotated[
    SlackNotifierConfig | AlertmanagerNotifierConfig, Field(discriminator="type")
]


class AlertsConfig(StrictModel):
    for_: SeverityDurations = Field(default_factory=SeverityDurations, alias="for")
    resolve_after: int = Field(default=2, ge=1, le=1000)
    repeat: Duration = 14400.0
    group_wait: Duration = 10.0
    max_delivery_age: Duration = 3600.0
    overrides: dict[str, AlertOverride] = Field(default_factory=dict)
    silences: list[Silence] = Field(default_factory=list)
    notifiers: list[NotifierConfig] = Field(default_factory=list)


# ---------------------------------------------------------------- the whole file


class Config(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    source: str
    agent: AgentConfig
    checks: list[CheckConfig]
    alerts: AlertsConfig

    def all_checks(self) -> Iterator[CheckConfig]:
        """Every configured check, group members right after their group."""
        yield from _walk(self.checks)

    def secrets(self) -> list[str]:
        found = [self.agent.auth_token.get_secret_value()]
        for check in self.all_checks():
            found.extend(check.secrets())
        for notifier in self.alerts.notifiers:
            found.extend(notifier.secrets())
        return [s for s in found if s]


def _walk(checks: list[CheckConfig]) -> Iterator[CheckConfig]:
    for check in checks:
        yield check
        yield from _walk(check.members())


# ---------------------------------------------------------------- loading


def resolve_path(explicit: str | None) -> Path:
    """`-c FILE`, else `$PROBE_CONFIG`, else ./config/probe.yaml, else the packaged default."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("PROBE_CONFIG")
    if from_env:
        return Path(from_env)
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    return Path(str(resources.files("probe").joinpath("default.yaml")))


def load_config(path: Path, environ: dict[str, str] | None = None) -> Config:
    text = _read(path)
    raw = _parse_yaml(text, str(path))
    env = dict(os.environ) if environ is None else environ
    problems: list[str] = []
    expanded = _expand_tree(raw, "", env, problems)
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    return _validate(expanded, str(path))


def load_or_report(path: Path) -> Config | None:
    """For commands: the config, or None after printing each problem on stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _read(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, expected a YAML file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than 1 MiB; is this the config file?"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not a UTF-8 text file (byte {exc.start})"]) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` merges are allowed to be overridden
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Timestamps stay strings: pydantic parses them where a datetime is wanted, and
# nowhere else should `2026-12-01` silently become a date object.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{where}: {line}{what}"]) from None
    except yaml.reader.ReaderError as exc:
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        what = f"unacceptable character #x{char:04x}: {exc.reason}"
        raise ConfigError([f"{where}: character {exc.position + 1}: {what}"]) from None
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise ConfigError([f"{where}: invalid YAML: {first_line}"]) from None
    if raw is None:
        raise ConfigError([f"{where}: the file is empty; expected a map with a `checks:` list"])
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ConfigError([f"{where}: expected a map at the top level, got a {kind}"])
    return raw


_VAR_RE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\})")


def expand_env(value: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """Expand `${VAR}`, `${VAR:-default}` and `$$`; return the text and missing variables."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name, has_default, default = match.group(2), match.group(3), match.group(4)
        current = env.get(name)
        if current:
            return current
        if has_default is not None:
            return default or ""
        if current is None:
            missing.append(name)
        return ""

    return _VAR_RE.sub(replace, value), missing


def _expand_tree(node: Any, path: str, env: dict[str, str], problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _expand_tree(v, _join(path, k), env, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_tree(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        text, missing = expand_env(node, env)
        for name in missing:
            problems.append(
                f"{path}: environment variable {name} is not set "
                f"(set it, or give a default: ${{{name}:-value}})"
            )
        return text
    return node


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _pydantic_problems(exc: ValidationError, prefix: str) -> list[str]:
    problems = []
    for error in exc.errors():
        location = prefix
        for part in error["loc"]:
            if isinstance(part, int):
                location += f"[{part}]"
            elif part not in _NOT_KEYS:
                location = _join(location, part)
        # A value in a secret-bearing field is never printed back, even when it is wrong.
        secret = any(part in SECRET_KEYS for part in error["loc"])
        got = "***" if secret else error.get("input")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "union_tag_invalid":
            message = f"unknown type {error['input'].get('type')!r} (known: alertmanager, slack)"
        elif error["type"] == "union_tag_not_found":
            message = "required key `type` is missing (known: alertmanager, slack)"
        elif error["type"] in _PLAIN_WORDS:
            message = _PLAIN_WORDS[error["type"]].format(got=got, **error.get("ctx", {}))
        problems.append(f"{location}: {message}" if location else message)
    return problems


# Parts of a pydantic error location that are not keys of the file.
_NOT_KEYS = frozenset({"function-after", "function-before", "slack", "alertmanager", "[key]"})
# Keys whose values may hold credentials: never echoed in an error.
SECRET_KEYS = frozenset(
    {"dsn", "url", "urls", "webhook_url", "token", "auth_token", "headers", "password"}
)

# pydantic error type -> our words; `got` is the value from the file.
_PLAIN_WORDS = {
    "model_attributes_type": "expected a map of key: value, got {got!r}",
    "dict_type": "expected a map of key: value, got {got!r}",
    "model_type": "expected a map of key: value, got {got!r}",
    "list_type": "expected a list, got {got!r}",
    "bool_parsing": "expected true or false, got {got!r}",
    "bool_type": "expected true or false, got {got!r}",
    "int_parsing": "expected a whole number, got {got!r}",
    "int_type": "expected a whole number, got {got!r}",
    "int_from_float": "expected a whole number, got {got!r}",
    "float_parsing": "expected a number, got {got!r}",
    "float_type": "expected a number, got {got!r}",
    "string_type": "expected text, got {got!r} (quote it)",
    "greater_than_equal": "must be at least {ge}, got {got!r}",
    "greater_than": "must be greater than {gt}, got {got!r}",
    "less_than_equal": "must be at most {le}, got {got!r}",
    "too_short": "needs at least {min_length} item(s)",
    "datetime_from_date_parsing": "expected a time like 2026-12-01T02:00:00Z, got {got!r}",
    "datetime_parsing": "expected a time like 2026-12-01T02:00:00Z, got {got!r}",
}


_SECTIONS: dict[str, type[StrictModel]] = {
    "agent": AgentConfig,
    "defaults": Defaults,
    "alerts": AlertsConfig,
}


def _validate(raw: dict[str, Any], source: str) -> Config:
    # Each section is validated on its own, so one broken section does not hide the
    # problems of the others: the user fixes the file in one pass.
    problems = [f"{key}: unknown key" for key in raw if key not in (*_SECTIONS, "checks")]
    sections: dict[str, Any] = {}
    for key, model in _SECTIONS.items():
        value = raw.get(key)
        try:
            sections[key] = model.model_validate({} if value is None else value)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, key))
    defaults: Defaults = sections.get("defaults", _BUILT_IN)
    checks = _validate_checks(
        _check_list(raw.get("checks"), problems), "checks", defaults.model_dump(), problems
    )
    seen: dict[str, str] = {}
    for path, check in _walk_with_paths(checks, "checks"):
        if check.name in seen:
            problems.append(
                f"{path}.name: duplicate check name {check.name!r} (also {seen[check.name]})"
            )
        else:
            seen[check.name] = path
    alerts: AlertsConfig | None = sections.get("alerts")
    if alerts is not None:
        problems += _unknown_check_references(alerts, seen)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return Config(source=source, agent=sections["agent"], checks=checks, alerts=sections["alerts"])


def _check_list(value: Any, problems: list[str]) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"checks: expected a list of checks, got {value!r}")
        return []
    entries = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            entries.append(item)
        else:
            problems.append(f"checks[{i}]: expected a map of key: value, got {item!r}")
    return entries


def _unknown_check_references(alerts: AlertsConfig, known: dict[str, str]) -> list[str]:
    problems = [
        f"alerts.overrides.{key}: no check named {key!r}"
        for key in alerts.overrides
        if key not in known
    ]
    for i, silence in enumerate(alerts.silences):
        problems += [
            f"alerts.silences[{i}].checks: no check named {name!r}"
            for name in silence.checks
            if name not in known
        ]
    return problems


def _walk_with_paths(checks: list[CheckConfig], path: str) -> Iterator[tuple[str, CheckConfig]]:
    for i, check in enumerate(checks):
        here = f"{path}[{i}]"
        yield here, check
        yield from _walk_with_paths(check.members(), f"{here}.checks")


def _validate_checks(
    raws: list[dict[str, Any]], path: str, inherited: dict[str, Any], problems: list[str]
) -> list[CheckConfig]:
    from probe.checks.registry import CHECK_TYPES, config_model

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
        model = config_model(kind)
        if model.nested:
            members_raw = entry.get("checks")
            if not isinstance(members_raw, list) or not all(
                isinstance(m, dict) for m in members_raw
            ):
                problems.append(f"{here}.checks: expected a list of checks")
                continue
            member_defaults: dict[str, Any] = {k: entry[k] for k in _INHERITED_KEYS if k in entry}
            found_before = len(problems)
            entry["checks"] = _validate_checks(
                members_raw, f"{here}.checks", member_defaults, problems
            )
            if len(problems) > found_before:
                continue  # the members' own lines say what is wrong; the group adds nothing
        try:
            check = model.model_validate(entry)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, here))
            continue
        # Disabled checks are validated (a typo should still be caught) but never run.
        if check.enabled:
            checks.append(check)
    return checks
