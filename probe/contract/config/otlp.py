"""`agent.otlp`: the /metrics families pushed over OTLP/HTTP (docs/metrics.md).

This module is what the config needs and imports no OpenTelemetry package: without the
`probe[otlp]` extra installed, `agent.otlp` is a config error that says how to install it,
and a config without it never pays for the import.
"""

from __future__ import annotations

import functools
import importlib
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from probe.core.fields import Duration, StrictModel, is_http_url, one_line_headers
from probe.core.redact import url_secrets

INSTALL_HINT = "pip install 'probe[otlp]'"
METRICS_PATH = "/v1/metrics"  # the OTLP/HTTP signal path, appended as the OTel SDKs do
MIN_EVERY = 1.0  # seconds
# What one push may take, retries included: well inside Docker's 10 s stop grace period,
# and never longer than `every`, so a slow endpoint is not asked twice at once.
MAX_PUSH_TIME = 10.0
_MODULES = (
    "opentelemetry.sdk.metrics.export",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
)


@functools.cache
def installed() -> bool:
    try:
        for name in _MODULES:
            importlib.import_module(name)
    except ImportError:
        return False
    return True


class OtlpConfig(StrictModel):
    """`agent.otlp: {endpoint, headers, every}`."""

    # The collector's or vendor's OTLP/HTTP URL, like OTEL_EXPORTER_OTLP_ENDPOINT:
    # `/v1/metrics` is appended unless the path already ends with it.
    endpoint: str
    # A vendor's API key travels in a header: every value is a secret.
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    every: Duration = 30.0

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not is_http_url(value):
            raise ValueError("expected an http:// or https:// URL like https://otlp.example.com")
        return value

    @field_validator("headers")
    @classmethod
    def _one_line_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return one_line_headers(value)

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, value: float) -> float:
        if value < MIN_EVERY:
            raise ValueError(f"must be at least {MIN_EVERY:g}s, got {value:g}s")
        return value

    @model_validator(mode="after")
    def _extra_installed(self) -> OtlpConfig:
        if not installed():
            raise ValueError(f"needs the otlp extra, which is not installed: {INSTALL_HINT}")
        return self

    @property
    def url(self) -> str:
        """The URL the metrics are POSTed to."""
        parts = urlsplit(self.endpoint)
        path = parts.path.rstrip("/")
        if not path.endswith(METRICS_PATH):
            path += METRICS_PATH
        return urlunsplit(parts._replace(path=path))

    @property
    def timeout(self) -> float:
        return min(self.every, MAX_PUSH_TIME)

    def header_values(self) -> dict[str, str]:
        return {name: value.get_secret_value() for name, value in self.headers.items()}

    def secrets(self) -> list[str]:
        found = url_secrets(self.endpoint)
        for value in self.headers.values():
            text = value.get_secret_value()
            if text:
                # `Basic abc123`, `Bearer abc123`: the credential alone may be echoed too.
                found += [text, *text.split()[-1:]]
        return found
