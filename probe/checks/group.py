"""A group: several checks run together, reported as one (status = the worst member)."""

from __future__ import annotations

import asyncio
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from probe.checks.base import Check, Report
from probe.checks.registry import build_check
from probe.config import CheckConfig
from probe.runner import CheckRunner
from probe.units import format_duration

# Members finish this much before the group's own deadline, so a member that times out
# is reported by name instead of the whole group saying `timed out`.
_MEMBER_HEADROOM = 0.04


class GroupConfig(CheckConfig):
    nested: ClassVar[bool] = True

    type: Literal["group"]
    checks: list[CheckConfig] = Field(default_factory=list)  # disabled members are left out

    @model_validator(mode="after")
    def _members_fit_in_group(self) -> GroupConfig:
        for member in self.checks:
            if member.timeout > self.timeout:
                raise ValueError(
                    f"member {member.name!r} has a timeout ({format_duration(member.timeout)}) "
                    f"longer than the group's ({format_duration(self.timeout)})"
                )
        return self

    def target(self) -> str:
        count = len(self.checks)
        return f"{count} check" if count == 1 else f"{count} checks"

    def secrets(self) -> list[str]:
        return [secret for member in self.checks for secret in member.secrets()]

    def members(self) -> list[CheckConfig]:
        return list(self.checks)


class GroupCheck(Check[GroupConfig]):
    config_model = GroupConfig

    def __init__(self, config: GroupConfig) -> None:
        super().__init__(config)
        self._runners = [
            CheckRunner(build_check(_within(member, config.timeout))) for member in config.checks
        ]

    async def run(self) -> Report:
        results = await asyncio.gather(*(runner.run() for runner in self._runners))
        names = (runner.name for runner in self._runners)
        return Report(members=tuple(zip(names, results, strict=True)))

    async def close(self) -> None:
        for runner in self._runners:
            await runner.close()


def _within(member: CheckConfig, group_timeout: float) -> CheckConfig:
    """The member's config with a deadline that ends just before the group's."""
    latest = max(group_timeout - _MEMBER_HEADROOM, group_timeout * 0.9)
    if member.timeout <= latest:
        return member
    return member.model_copy(update={"timeout": latest})
