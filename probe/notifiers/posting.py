"""One JSON POST to a receiver, sorted into delivered, retry or give up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from probe.contract.plugin import DeliveryError
from probe.core.redact import MASK, Redactor, redact_url
from probe.notifiers.errors import REDIRECT_STATUSES, RedirectRefused, connection_error, http_error

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
    that start with the redacted URL (unless the whole URL is a secret) and never hold a
    secret. A redirect is never followed, whatever session this is given.

    `read_wait` reads the wait a 429 answer's body asks for, for services that say it
    there (Discord's `retry_after`, Telegram's `parameters.retry_after`)."""
    where = redact(redact_url(url))
    where = "" if where == MASK else where  # a hook URL that is its own credential
    try:
        async with (
            asyncio.timeout(timeout),
            session.post(url, json=body, headers=headers, allow_redirects=False) as response,
        ):
            if response.status < 300:
                return None
            if response.status in REDIRECT_STATUSES:
                raise RedirectRefused(response.status, response.headers.get("Location", ""), url)
            answer = await response.text(errors="replace")
            wait = response.headers.get("Retry-After")
            if read_wait is not None and response.status == 429:
                said = read_wait(answer)
                wait = wait if said is None else f"{said:g}"
            error = http_error(response.status, wait, time.time())
            text = answer[:ERROR_BODY_SHOWN].strip()
    except (aiohttp.ClientError, OSError) as exc:  # OSError includes TimeoutError
        return connection_error(exc, timeout, connect_timeout, redact, where)
    shown = " ".join(text.split())  # one line, and no empty trailing field
    detail = ": ".join(part for part in (where, error.detail, shown) if part)
    return DeliveryError(redact(detail), error.retryable, error.retry_after)
