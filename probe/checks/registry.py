"""The only list of check types. Modules are imported on first use, so `probe check`
loads asyncpg only when a postgres check is configured."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from probe.checks.base import Check
from probe.config import CheckConfig

# type name -> "module:class". A new check type is one file plus one line here.
CHECK_TYPES: dict[str, str] = {
    "postgres": "probe.checks.postgres:PostgresCheck",
    "redis": "probe.checks.redis:RedisCheck",
    "http": "probe.checks.http:HttpCheck",
    "tcp": "probe.checks.tcp:TcpCheck",
    "group": "probe.checks.group:GroupCheck",
    "bullmq": "probe.checks.bullmq:BullMQCheck",
    "system": "probe.checks.system:SystemCheck",
}


def check_class(type_name: str) -> type[Check[Any]]:
    module_name, _, class_name = CHECK_TYPES[type_name].partition(":")
    cls: type[Check[Any]] = getattr(import_module(module_name), class_name)
    return cls


def config_model(type_name: str) -> type[CheckConfig]:
    model: type[CheckConfig] = check_class(type_name).config_model
    return model


def build_check(config: CheckConfig) -> Check[Any]:
    """A `Check` instance for a validated config entry."""
    return check_class(config.type)(config)
