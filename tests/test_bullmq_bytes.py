"""Bytes that are not UTF-8 in a BullMQ events stream (a failedReason from a native
library or a non-Node producer): read with U+FFFD in their place, counted, and read past."""

from __future__ import annotations

import redis.asyncio as aioredis

from probe.core.model import CheckResult, Observation, Status
from tests.bullmq_fixtures import (  # noqa: F401 - fixtures
    bullmq_config,
    check_runner,
    outcome_url,
)


def observed(result: CheckResult, queue: str) -> dict[str, Observation]:
    return {o.measure: o for o in result.observations if o.component == queue}


async def test_a_reason_that_is_not_utf8_is_shown_replaced_and_read_past(
    outcome_url: str,  # noqa: F811
) -> None:
    config = bullmq_config(outcome_url, ["q1", "q2"], min_jobs=1, warn={"failure_ratio": "10%"})
    raw = aioredis.Redis.from_url(outcome_url)  # bytes in, bytes out: what a producer writes
    try:
        async with check_runner(config) as runner:
            await runner.run()  # the window starts at the end of the (empty) stream
            await raw.xadd(
                "bull:q1:events",
                {"event": "failed", "jobId": "b", "failedReason": bytes(range(256))},
            )
            await raw.xadd("bull:q1:events", {"event": "completed", "jobId": "c1"})
            first = await runner.run()
            await raw.xadd("bull:q1:events", {"event": "completed", "jobId": "c2"})
            await raw.xadd("bull:q2:events", {"event": "completed", "jobId": "d1"})
            second = await runner.run()
    finally:
        await raw.aclose()

    assert "crashed" not in first.output and "codec" not in first.output
    got = observed(first, "q1")
    assert got["failed_total"].value == 1 and got["completed_total"].value == 1
    note = got["failed_rate"].note
    # Printable ASCII kept (`:;<=>?@` reads as a URL password to the redaction), control
    # characters blanked, each bad byte one U+FFFD, cut at 120 characters.
    ascii_part = "!\"#$%&'()*+,-./0123456789:***@" + "".join(map(chr, range(65, 127))) + " "
    reason = ascii_part + "\ufffd" * (119 - len(ascii_part)) + "\u2026"
    assert note == f'1 in 5m; "{reason}" x1'
    assert first.status is Status.WARN
    assert first.output.startswith('q1 failure_ratio 50% > 10% (1 of 2 in 5m; "!"#$%')

    # The cursor moved past the entry: it is not counted again, the next ones are.
    got = observed(second, "q1")
    assert got["failed_total"].value == 1 and got["completed_total"].value == 2
    assert observed(second, "q2")["completed_total"].value == 1
