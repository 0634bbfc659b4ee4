"""What every plugin is: the bases of check types and notifiers. Imports no plugin.

A check type is one module under `probe/checks/` with a `CheckConfig` subclass (its
fields, `measures`, `secret_fields`, `metric_points`) and a `Check` subclass (`run`).
A notifier is one module under `probe/notifiers/` with a `NotifierConfig` subclass and a
`Notifier` subclass (`send`; optionally `Resender`). The registries
(`probe.contract.plugins`: `CHECK_TYPES`, `NOTIFIER_TYPES`) are the only lists of names: config
validation, `probe validate`, `/metrics`, the docs and the tests derive from them.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import (
    TYPE_CHECKING,
    ClassVar,
    Generic,
    Literal,
    Protocol,
    Self,
    TypeVar,
    runtime_checkable,
)

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator

from probe.contract import limits as limit_rules
from probe.contract.limits import LimitMap, LimitRow
from probe.core.fields import MAX_NAME_LENGTH, NAME_RE, Duration, Limits, StrictModel
from probe.core.model import CheckResult, Sample, Status
from probe.core.redact import Redactor
from probe.core.times import Clock
from probe.core.units import Limit

if TYPE_CHECKING:
    import aiohttp

    from probe.contract.heartbeat_state import HeartbeatState
    from probe.contract.notification import Alert, Notification


# ---------------------------------------------------------------- metric declarations


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A metric family a check type feeds, declared next to the samples that feed it."""

    name: str
    doc: str
    labels: tuple[str, ...]
    kind: Literal["gauge", "counter", "histogram"] = "gauge"
    # Upper bounds of a histogram's buckets (+Inf is implied); each run's value of the
    # point's measure is observed into them.
    buckets: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One series of a family, filled from the latest (component, measure) sample.

    `skip_note` drops the value when the sample's note starts with it (a host figure
    standing in for a container one must not pose as the container's).
    """

    family: MetricFamily
    labels: tuple[str, ...]
    component: str
    measure: str
    skip_note: str = ""


# ---------------------------------------------------------------- check configs


class Defaults(StrictModel):
    """The `defaults:` section: timing each check takes unless it sets its own."""

    interval: Duration = 15.0
    timeout: Duration = 5.0
    window: Duration = 300.0


BUILT_IN_DEFAULTS = Defaults()
# The keys a group hands down to its members, as the `defaults:` section does to checks.
INHERITED_KEYS = tuple(Defaults.model_fields)


class CheckConfig(StrictModel):
    """Fields every check type takes. Each check module subclasses this."""

    # Measures this type can be given thresholds for; subclasses extend the set.
    measures: ClassVar[frozenset[str]] = frozenset({"response_time", "error_rate"})
    # Fields whose values may hold credentials: never echoed in a config error.
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # Families this type feeds in /metrics; `metric_points` lists each configured series.
    metric_families: ClassVar[tuple[MetricFamily, ...]] = ()
    # What a type is beyond its fields, declared once here and asked everywhere else:
    # - has_members: its `checks:` key holds member checks that run, report and alert as
    #   its members (group); `members()` lists them.
    # - receives_pings: the agent's /ping/<name> routes record for it (heartbeat); its
    #   check reads them through `CheckContext.agent.pings`.
    has_members: ClassVar[bool] = False
    receives_pings: ClassVar[bool] = False
    # Limits of states that are bad wherever this type runs; the user's `warn:`/`fail:`
    # merge with them measure by measure (`probe.contract.limits.merge`), `off` switches one off.
    default_warn: ClassVar[LimitMap] = {}
    default_fail: ClassVar[LimitMap] = {}

    name: str
    type: str
    interval: Duration = BUILT_IN_DEFAULTS.interval
    # Validated even when defaulted: 5s is no good beside `interval: 2s`.
    timeout: Duration = Field(default=BUILT_IN_DEFAULTS.timeout, validate_default=True)
    critical: bool = False
    enabled: bool = True
    warn: Limits = Field(default_factory=dict)
    fail: Limits = Field(default_factory=dict)
    window: Duration = BUILT_IN_DEFAULTS.window
    # Checks this one needs (`queues` needs `redis`): while one fails, this check's new
    # alerts wait, and verbose /health shows `blocked_by`. Checked by config.rules.
    depends_on: list[str] = Field(default_factory=list)
    # Where this entry is in the file (`checks[2]`), set by the loader for `probe validate`.
    _key_path: str = PrivateAttr(default="")

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

    def default_limits(self) -> tuple[LimitMap, LimitMap]:
        """(warn, fail) defaults; types whose defaults depend on their fields extend."""
        return self.default_warn, self.default_fail

    def check_limits(self) -> tuple[dict[str, Limit], dict[str, Limit]]:
        """The effective (warn, fail) limits of the check as a whole."""
        return limit_rules.merge(self.warn, self.fail, *self.default_limits())

    def limits_for(self, component: str) -> tuple[dict[str, Limit], dict[str, Limit]]:
        """(warn, fail) limits for one component; types with per-component overrides extend."""
        return self.check_limits()

    def limit_rows(self) -> list[LimitRow]:
        """Every effective limit and where it came from, for `probe validate -v`."""
        return limit_rules.rows("", self.check_limits(), {"": (self.warn, self.fail)})

    def user_limited(self, measure: str) -> bool:
        """Whether the user set a limit (not `off`) on this measure of the whole check."""
        return any(
            limit is not None and not limit.off
            for limit in (self.warn.get(measure), self.fail.get(measure))
        )

    @property
    def key_path(self) -> str:
        return self._key_path

    def located(self, path: str) -> Self:
        """This config knowing where it is in the file (`checks[2].checks[0]`)."""
        self._key_path = path
        return self

    def target(self) -> str:
        """What this check talks to, safe to print (secrets redacted)."""
        return ""

    def secrets(self) -> list[str]:
        """Every secret string in this check's fields, for redaction."""
        return []

    def members(self) -> list[CheckConfig]:
        """The member checks of a type that `has_members`; none for the others."""
        return []

    def metric_points(self) -> Iterable[MetricPoint]:
        """Every series this check feeds, present from the first scrape (NaN until measured)."""
        return ()

    def linked(self, others: Sequence[CheckConfig]) -> Self:
        """This config seen beside all the others (cross-check facts, such as whether a
        bullmq check shares its Redis); called once by the loader after validation."""
        return self

    def named_checks(self) -> list[tuple[str, str, str]]:
        """Other checks this one names besides `depends_on`, as (key, check name, the type
        that check must have): an http check's `vendor`. The loader reports a name that
        is no check, or a check of another type, as a config error at that key."""
        return []


# ---------------------------------------------------------------- checks


class CheckFailed(Exception):
    """Raised by a check with words a user can act on: `connection refused (127.0.0.1:5433)`.

    The message is shown as-is in /health, the CLI and alerts, so it must never hold
    an exception class name or a secret.
    """


@dataclass(slots=True)
class Report:
    """What one run of a check measured. The runner adds timing and applies thresholds."""

    samples: list[Sample] = field(default_factory=list)
    # Set by checks that found a problem but still measured something (HTTP 503 with a
    # response time); the run fails with these words.
    failure: str = ""
    members: tuple[tuple[str, CheckResult], ...] = ()
    # What the members add up to, when it is not simply the worst of them (a group of
    # redundant providers that fails only when enough of them fail).
    members_status: Status | None = None


class MemberRunner(Protocol):
    """What a check that runs other checks (group) gets back for each member."""

    @property
    def name(self) -> str: ...

    async def run(self) -> CheckResult: ...

    async def close(self) -> None: ...


def _no_member_runners(config: CheckConfig) -> MemberRunner:
    raise RuntimeError("this check was built without a runner factory; use checks.factory")


class Pings(Protocol):
    """The agent's record of pings, by check name."""

    def state(self, name: str) -> HeartbeatState | None: ...


def _no_results(name: str) -> CheckResult | None:
    return None


@dataclass(frozen=True, slots=True)
class AgentServices:
    """What only a running agent has to offer a check."""

    pings: Pings
    # The latest result of another check by name (an http check reads its `vendor`'s
    # statuspage check); None when it has none yet.
    results: Callable[[str], CheckResult | None] = _no_results


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the agent hands every check it builds: its clock, its redactor, and the one
    factory that builds runners, so nested checks are built like top-level ones."""

    clock: Clock = time.time
    redactor: Redactor | None = None
    make_runner: Callable[[CheckConfig], MemberRunner] = _no_member_runners
    # What the running agent offers its checks. None when no agent runs (`probe check`):
    # nothing arrives between runs then, so pings and rates over a window cannot be judged.
    agent: AgentServices | None = None


C = TypeVar("C", bound=CheckConfig)


class Check(ABC, Generic[C]):
    """One configured check. Lives across runs so it can keep connections open.

    The deadline is set by the caller (`asyncio.timeout` in the runner); checks pass
    `config.timeout` to their drivers so no single call outlives it.
    """

    config_model: ClassVar[type[CheckConfig]]

    def __init__(self, config: C, context: CheckContext | None = None) -> None:
        self.config = config
        self.context = context or CheckContext()

    @abstractmethod
    async def run(self) -> Report: ...

    async def close(self) -> None:
        """Release connections. Safe to call twice."""


# ---------------------------------------------------------------- notifiers


SeverityName = Literal["critical", "warning"]
SEVERITIES: tuple[SeverityName, ...] = ("critical", "warning")
# A check name or a glob of them (`queue*`, `db-?`): names are `[a-z0-9_-]+`.
_CHECK_PATTERN = re.compile(r"^[a-z0-9_\-*?\[\]!]+$")


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


class NotifierConfig(StrictModel):
    """Fields every notifier takes. Each notifier module subclasses this.

    The routing filters (`severities`, `checks`, `exclude_checks`) say which alerts this
    notifier gets; an alert goes to every notifier whose filters match it.
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset()

    type: str
    enabled: bool = True
    timeout: Duration = 10.0
    severities: list[SeverityName] = Field(default_factory=lambda: list(SEVERITIES), min_length=1)
    checks: list[str] = Field(default_factory=list)
    exclude_checks: list[str] = Field(default_factory=list)

    @field_validator("checks", "exclude_checks")
    @classmethod
    def _names_or_globs(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not _CHECK_PATTERN.match(pattern):
                raise ValueError(f"expected check names or globs like queue*, got {pattern!r}")
        return value

    def routes(self, severity: str, names: Sequence[str]) -> bool:
        """Whether an alert of `severity` on a check goes to this notifier. `names` are
        the check's name and its enclosing groups': a filter naming a group covers its
        members, as overrides and silences do."""
        if severity not in self.severities:
            return False
        if self.checks and not _any_match(names, self.checks):
            return False
        return not _any_match(names, self.exclude_checks)

    def filters(self) -> str:
        """The routing filters in words (`critical; checks: db, queue*`), '' when none."""
        parts = [] if len(self.severities) == len(SEVERITIES) else [", ".join(self.severities)]
        if self.checks:
            parts.append("checks: " + ", ".join(self.checks))
        if self.exclude_checks:
            parts.append("exclude_checks: " + ", ".join(self.exclude_checks))
        return "; ".join(parts)

    def unconfigured(self) -> str:
        """Why this notifier is switched off though enabled (an empty webhook URL from an
        unset env var), or '' when it is ready to send."""
        return ""

    def secrets(self) -> list[str]:
        return []


def _any_match(names: Sequence[str], patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(name, pattern) for name in names for pattern in patterns)


N = TypeVar("N", bound=NotifierConfig)


class DeliveryError(Exception):
    """A send that did not go through, in words a user can act on (no secrets)."""

    def __init__(self, detail: str, retryable: bool = True, retry_after: float | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(ABC, Generic[N]):
    """One configured notifier. `send` delivers or raises `DeliveryError` (above);
    the delivery queue around it retries, so `send` makes exactly one attempt."""

    config_model: ClassVar[type[NotifierConfig]]

    def __init__(self, config: N, session: aiohttp.ClientSession, redactor: Redactor) -> None:
        self.config = config
        self.session = session
        self.redact = redactor
        # The whole budget of one `send`; delivery and `probe alert-test` enforce it.
        self.timeout: float = config.timeout
        # Where it sends to, safe to print (`slack webhook hooks.slack.com`): refined by
        # each notifier once it knows its target.
        self.description: str = config.type
        # `agent.public_url`: where links in messages point (its `/status` page), '' for none.
        self.public_url: str = ""

    @property
    def kind(self) -> str:
        """The `notifier` label of probe_notifications_total: the registered type name."""
        return self.config.type

    @abstractmethod
    async def send(self, notification: Notification) -> None: ...


@runtime_checkable
class Resender(Protocol):
    """Optional notifier capability: receivers that expire alerts unless they are sent
    again (Alertmanager) get every firing alert each `resend_interval` seconds."""

    @property
    def resend_interval(self) -> float: ...

    def resend(self, active: list[Alert], agent: str, now: float) -> Awaitable[None]: ...
