"""Value types shared by every config model: durations, limits, names, http URLs.

Imports nothing of probe but units and redact, so the contract and every plugin can use it.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr

from probe.core.units import Limit, parse_duration, parse_limit

MAX_NAME_LENGTH = 64
NAME_RE = re.compile(r"^[a-z0-9_-]+$")

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


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name like Africa/Johannesburg)"
        ) from None
    return value


TimeZone = Annotated[str, AfterValidator(_iana_zone)]


class StrictModel(BaseModel):
    """Unknown keys are errors (typos must not pass silently); configs never change."""

    # defer_build: a model's validator is made on its first use, so `probe check` builds
    # only the sections and check types its file has (docs/performance.md#cli-start-up).
    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True
    )


def one_line_headers(value: dict[str, SecretStr]) -> dict[str, SecretStr]:
    """HTTP header names and values from the config that cannot split a request."""
    for name, text in value.items():
        if not name or any(c in name for c in ":\r\n "):
            raise ValueError(f"invalid header name {name!r}")
        if any(c in text.get_secret_value() for c in "\r\n"):
            raise ValueError(f"header {name}: the value must be one line")
    return value


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
