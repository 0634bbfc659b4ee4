"""The one way a configured check becomes a runner, for top-level checks and group members
alike: built with the agent's clock and redactor."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from probe.contract import CheckConfig, CheckContext, no_results
from probe.model import CheckResult
from probe.plugins import build_check
from probe.redact import Redactor
from probe.runner import CheckRunner
from probe.times import Clock

if TYPE_CHECKING:
    # Only the running agent has an inbox; `probe check` must not import aiohttp's server.
    from probe.pings import Inbox


def build_runner(
    config: CheckConfig,
    redactor: Redactor | None = None,
    clock: Clock = time.time,
    inbox: Inbox | None = None,  # the running agent's; None in `probe check`
    results: Callable[[str], CheckResult | None] = no_results,  # the agent's store's
) -> CheckRunner:
    def member_runner(member: CheckConfig) -> CheckRunner:
        return build_runner(member, redactor, clock, inbox, results)

    context = CheckContext(clock, redactor, member_runner, inbox, results)
    return CheckRunner(build_check(config, context), redactor, clock)
