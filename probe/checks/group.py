"""A group: several checks run together, reported as one (status = the worst member)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from probe.contract.plugin import Check, CheckConfig, CheckContext, Report
from probe.core.fields import StrictModel
from probe.core.model import CheckResult, Status, worst
from probe.core.units import format_duration


class FailWhen(StrictModel):
    # Members that must fail at once for the group to fail; fewer only warn.
    failing: int = Field(ge=1)


class GroupConfig(CheckConfig):
    has_members: ClassVar[bool] = True

    type: Literal["group"]
    checks: list[CheckConfig] = Field(default_factory=list)  # disabled members are left out
    # Redundant providers: the group fails only when this many members fail.
    fail_when: FailWhen | None = None

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
        if self.fail_when is not None and self.fail_when.failing > len(self.checks):
            raise ValueError(
                f"fail_when.failing is {self.fail_when.failing} but the group has "
                f"{len(self.checks)} enabled member(s): it could never fail"
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
        members = tuple(zip(names, results, strict=True))
        return Report(members=members, members_status=self._verdict(results))

    def _verdict(self, results: list[CheckResult]) -> Status | None:
        rule = self.config.fail_when
        if rule is None:
            return None  # the worst member's status
        failing = sum(result.status is Status.FAIL for result in results)
        if failing >= rule.failing:
            return Status.FAIL
        return worst(
            [
                Status.WARN if failing else Status.PASS,
                *(r.status for r in results if r.status is not Status.FAIL),
            ]
        )

    async def close(self) -> None:
        for runner in self._runners:
            await runner.close()
