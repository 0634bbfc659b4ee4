"""A group: several checks run together, reported as one (status = the worst member)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from probe.contract import Check, CheckConfig, CheckContext, Report
from probe.units import format_duration


class GroupConfig(CheckConfig):
    has_members: ClassVar[bool] = True

    type: Literal["group"]
    checks: list[CheckConfig] = Field(default_factory=list)  # disabled members are left out

    @model_validator(mode="after")
    def _members_fit_in_group(self) -> GroupConfig:
        for member in self.checks:
            if member.has_members:
                # /health, alert keys and metrics describe one level of members.
                raise ValueError(f"member {member.name!r} is a group; groups do not nest")
            if member.critical:
                # /ready and the overall status judge top-level checks; a flag that would
                # silently do nothing must not pass validation.
                raise ValueError(
                    f"member {member.name!r} sets critical: true, which only top-level "
                    "checks can; set it on the group"
                )
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

    def linked(self, others: Sequence[CheckConfig]) -> Self:
        # Members are checks like any other: a redis member must learn of a bullmq check
        # sharing its server as a top-level redis check does.
        return self.model_copy(update={"checks": [m.linked(others) for m in self.checks]})


class GroupCheck(Check[GroupConfig]):
    config_model = GroupConfig

    def __init__(self, config: GroupConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        # Members keep their own exact deadlines; the runner gives a group a little grace
        # on top, so a member that times out is reported by name with its own words.
        self._runners = [self.context.make_runner(member) for member in config.checks]

    async def run(self) -> Report:
        results = await asyncio.gather(*(runner.run() for runner in self._runners))
        names = (runner.name for runner in self._runners)
        return Report(members=tuple(zip(names, results, strict=True)))

    async def close(self) -> None:
        for runner in self._runners:
            await runner.close()
