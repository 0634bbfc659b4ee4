"""The two registries: the only lists of check types and notifier types.

A new check type is one module under `probe/checks/` plus one line in `CHECK_TYPES`; a
new notifier is one module under `probe/notifiers/` plus one line in `NOTIFIER_TYPES`.
Config validation, `probe validate`, `/metrics`, the docs and the tests read these.
Modules are imported on first use, so `probe check` loads asyncpg only when a postgres
check is configured.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from probe.contract.plugin import (
    Check,
    CheckConfig,
    CheckContext,
    MetricFamily,
    Notifier,
    NotifierConfig,
)
from probe.core.redact import Redactor

if TYPE_CHECKING:
    import aiohttp

# type name -> "module:class"
CHECK_TYPES: dict[str, str] = {
    "postgres": "probe.checks.postgres:PostgresCheck",
    "redis": "probe.checks.redis:RedisCheck",
    "http": "probe.checks.http:HttpCheck",
    "tcp": "probe.checks.tcp:TcpCheck",
    "group": "probe.checks.group:GroupCheck",
    "bullmq": "probe.checks.bullmq:BullMQCheck",
    "system": "probe.checks.system:SystemCheck",
    "prometheus": "probe.checks.prometheus:PrometheusCheck",
    "heartbeat": "probe.checks.heartbeat:HeartbeatCheck",
    "dns": "probe.checks.dns:DnsCheck",
    "statuspage": "probe.checks.statuspage:StatuspageCheck",
    "domain": "probe.checks.domain:DomainCheck",
}

NOTIFIER_TYPES: dict[str, str] = {
    "slack": "probe.notifiers.slack:SlackNotifier",
    "alertmanager": "probe.notifiers.alertmanager:AlertmanagerNotifier",
    "webhook": "probe.notifiers.webhook:WebhookNotifier",
    "pagerduty": "probe.notifiers.pagerduty:PagerDutyNotifier",
    "opsgenie": "probe.notifiers.opsgenie:OpsgenieNotifier",
    "teams": "probe.notifiers.teams:TeamsNotifier",
    "discord": "probe.notifiers.discord:DiscordNotifier",
    "telegram": "probe.notifiers.telegram:TelegramNotifier",
    "email": "probe.notifiers.mail:EmailNotifier",
    "ntfy": "probe.notifiers.ntfy:NtfyNotifier",
    "pushover": "probe.notifiers.pushover:PushoverNotifier",
    "apprise": "probe.notifiers.apprise_urls:AppriseNotifier",
}


def _load(spec: str) -> Any:
    module_name, _, class_name = spec.partition(":")
    return getattr(import_module(module_name), class_name)


# ---------------------------------------------------------------- check types


def check_class(type_name: str) -> type[Check[Any]]:
    cls: type[Check[Any]] = _load(CHECK_TYPES[type_name])
    return cls


def check_config_model(type_name: str) -> type[CheckConfig]:
    return check_class(type_name).config_model


def build_check(config: CheckConfig, context: CheckContext | None = None) -> Check[Any]:
    """A `Check` instance for a validated config entry."""
    return check_class(config.type)(config, context)


def metric_families() -> list[MetricFamily]:
    """Every family any check type feeds, in registry order (imports every check module)."""
    found: dict[tuple[str, str], MetricFamily] = {}
    for type_name in CHECK_TYPES:
        for family in check_config_model(type_name).metric_families:
            found.setdefault((family.name, family.kind), family)
    return list(found.values())


# ---------------------------------------------------------------- notifiers


def notifier_class(type_name: str) -> type[Notifier[Any]]:
    cls: type[Notifier[Any]] = _load(NOTIFIER_TYPES[type_name])
    return cls


def notifier_config_model(type_name: str) -> type[NotifierConfig]:
    return notifier_class(type_name).config_model


def build_notifier(
    config: NotifierConfig,
    session: aiohttp.ClientSession,
    redactor: Redactor,
    public_url: str = "",
) -> Notifier[Any]:
    notifier = notifier_class(config.type)(config, session, redactor)
    notifier.public_url = public_url.rstrip("/")
    return notifier
