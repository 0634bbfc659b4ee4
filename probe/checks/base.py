"""The one shape every check type has (blackbox_exporter's prober signature, in Python)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from probe.config import CheckConfig
from probe.model import CheckResult, Sample


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


C = TypeVar("C", bound=CheckConfig)


class Check(ABC, Generic[C]):
    """One configured check. Lives across runs so it can keep connections open.

    The deadline is set by the caller (`asyncio.timeout` in the runner); checks pass
    `config.timeout` to their drivers so no single call outlives it.
    """

    config_model: ClassVar[type[CheckConfig]]

    def __init__(self, config: C) -> None:
        self.config = config

    @abstractmethod
    async def run(self) -> Report: ...

    async def close(self) -> None:
        """Release connections. Safe to call twice."""
