"""The one way a configured check becomes a runner, for top-level checks and group members
alike: built with the agent's clock and redactor."""

from __future__ import annotations

import time

from probe.contract.plugin import AgentServices, CheckConfig, CheckContext
from probe.contract.plugins import build_check
from probe.core.redact import Redactor
from probe.core.times import Clock
from probe.engine.runner import CheckRunner


def build_runner(
    config: CheckConfig,
    redactor: Redactor | None = None,
    clock: Clock = time.time,
    agent: AgentServices | None = None,  # the running agent's; None in `probe check`
) -> CheckRunner:
    def member_runner(member: CheckConfig) -> CheckRunner:
        return build_runner(member, redactor, clock, agent)

    context = CheckContext(clock=clock, redactor=redactor, make_runner=member_runner, agent=agent)
    return CheckRunner(build_check(config, context), redactor, clock)
