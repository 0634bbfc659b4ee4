"""One JSON POST to a receiver, sorted into delivered, retry or give up."""

from __future__ import annotations

import asyncio
import time
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
) -> DeliveryError | None:
    """None when the receiver took it (any 2xx, whatever the body), else why not: words
    that start with the redacted URL and never hold a secret."""
    try:
        async with (
            asyncio.timeout(timeout),
            session.post(url, json=body, headers=headers) as response,
        ):
            if response.status < 300:
                return None
            error = http_error(response.status, response.headers.get("Retry-After"), time.time())
            text = (await response.text(errors="replace"))[:ERROR_BODY_SHOWN].strip()
    except (aiohttp.ClientError, OSError) as exc:  # OSError includes TimeoutError
        words = connection_words(exc, timeout, connect_timeout)
        return DeliveryError(redact(f"{redact_url(url)}: {words}"))
    detail = f"{redact_url(url)}: {error.detail}" + (f": {text}" if text else "")
    return DeliveryError(redact(detail), error.retryable, error.retry_after)
