"""The one way a configured check becomes a runner, for top-level checks and group members
alike: built with the agent's clock and redactor."""

from __future__ import annotations

import functools
import time

from probe.contract.plugin import AgentServices, CheckConfig, CheckContext
from probe.contract.plugins import build_check
from probe.core.redact import Redactor
from probe.core.times import Clock
from probe.engine.runner import CheckRunner

# The context of the last build. The agent builds every check with the same clock,
# redactor and services, so they share one context (and one member factory) instead of
# a context and a closure each: about 360 bytes a check.
_last: tuple[Redactor | None, Clock, AgentServices | None, CheckContext] | None = None


def _context(redactor: Redactor | None, clock: Clock, agent: AgentServices | None) -> CheckContext:
    global _last
    if _last is not None and _last[0] is redactor and _last[1] is clock and _last[2] is agent:
        return _last[3]
    member_runner = functools.partial(build_runner, redactor=redactor, clock=clock, agent=agent)
    context = CheckContext(clock=clock, redactor=redactor, make_runner=member_runner, agent=agent)
    _last = (redactor, clock, agent, context)
    return context


def build_runner(
    config: CheckConfig,
    redactor: Redactor | None = None,
    clock: Clock = time.time,
    agent: AgentServices | None = None,  # the running agent's; None in `probe check`
) -> CheckRunner:
    return CheckRunner(build_check(config, _context(redactor, clock, agent)), redactor, clock)
