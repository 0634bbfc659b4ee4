"""`probe alert-test`: one test notification through every enabled notifier, reported each.

Run by a person waiting at a terminal: one retry, soon, and none after an attempt that
already sat out most of its timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time

from probe.contract.config import Config
from probe.contract.notification import Notification, alert_test_notification
from probe.contract.plugin import DeliveryError
from probe.contract.plugins import build_notifier
from probe.core.redact import Redactor
from probe.core.units import timed_out_after
from probe.engine.alerts.delivery import Notifier
from probe.engine.alerts.session import notifier_session

log = logging.getLogger("probe.alerts")

TEST_RETRY_WAIT_CAP = 10.0


async def send_test(config: Config) -> list[tuple[str, bool, str]]:
    """`probe alert-test`: one attempt per enabled notifier -> (description, delivered, detail)."""
    redactor = Redactor(config.secrets())
    reports: list[tuple[str, bool, str]] = []
    async with notifier_session(config.alerts.notifiers) as session:
        for index, notifier_config in enumerate(config.alerts.notifiers):
            if not notifier_config.enabled:
                continue
            why_not = notifier_config.unconfigured()
            if why_not:
                reports.append(
                    (f"{notifier_config.type}[{index}]", False, f"not configured: {why_not}")
                )
                continue
            notifier = build_notifier(notifier_config, session, redactor, config.agent.public_url)
            reports.append(await _try_send(notifier, config.agent.name, redactor))
    return reports


async def _try_send(notifier: Notifier, agent: str, redactor: Redactor) -> tuple[str, bool, str]:
    notification = alert_test_notification(agent, time.time())
    detail = ""
    for attempt in range(2):
        started = time.monotonic()
        detail, retry_in = await _attempt(notifier, notification, redactor)
        if not detail:
            return notifier.description, True, ""
        slow = time.monotonic() - started >= notifier.timeout / 2
        if attempt or retry_in is None or slow:
            break
        await asyncio.sleep(retry_in)
    return notifier.description, False, detail


async def _attempt(
    notifier: Notifier, notification: Notification, redactor: Redactor
) -> tuple[str, float | None]:
    """'' when delivered, else why not and, when worth retrying, how soon."""
    try:
        async with asyncio.timeout(notifier.timeout):
            await notifier.send(notification)
    except DeliveryError as exc:
        retry_in = min(exc.retry_after or 1.0, TEST_RETRY_WAIT_CAP) if exc.retryable else None
        return exc.detail, retry_in
    except TimeoutError:
        return timed_out_after(notifier.timeout), None
    except Exception as exc:  # a bug or a library surprise is this notifier's FAILED line
        log.debug("unexpected error sending to %s", notifier.description, exc_info=True)
        return redactor(f"unexpected error: {exc}" if str(exc) else "unexpected error"), None
    return "", None
