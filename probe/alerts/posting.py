"""One JSON POST to a receiver, sorted into delivered, retry or give up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from probe.alerts.delivery import DeliveryError, connection_words, http_error
from probe.redact import Redactor, redact_url

ERROR_BODY_SHOWN = 200  # characters of a receiver's error answer kept in the words


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    *,
    timeout: float,
    connect_timeout: float,
    redact: Redactor,
    headers: dict[str, str] | None = None,
    read_wait: Callable[[str], float | None] | None = None,
) -> DeliveryError | None:
    """None when the receiver took it (any 2xx, whatever the body), else why not: words
    that start with the redacted URL and never hold a secret.

    `read_wait` reads the wait a 429 answer's body asks for, for services that say it
    there (Discord's `retry_after`, Telegram's `parameters.retry_after`)."""
    try:
        async with (
            asyncio.timeout(timeout),
            session.post(url, json=body, headers=headers) as response,
        ):
            if response.status < 300:
                return None
            answer = await response.text(errors="replace")
            wait = response.headers.get("Retry-After")
            if read_wait is not None and response.status == 429:
                said = read_wait(answer)
                wait = wait if said is None else f"{said:g}"
            error = http_error(response.status, wait, time.time())
            text = answer[:ERROR_BODY_SHOWN].strip()
    except (aiohttp.ClientError, OSError) as exc:  # OSError includes TimeoutError
        words = connection_words(exc, timeout, connect_timeout)
        return DeliveryError(redact(f"{redact_url(url)}: {words}"))
    detail = f"{redact_url(url)}: {error.detail}" + (f": {text}" if text else "")
    return DeliveryError(redact(detail), error.retryable, error.retry_after)
