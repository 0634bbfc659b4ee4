"""The one HTTP session all notifiers of a service share, and its one rule: no redirects."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from probe.contract.plugin import NotifierConfig
from probe.notifiers.errors import REDIRECT_STATUSES, RedirectRefused

DEFAULT_TIMEOUT = 10.0
MAX_CONNECT_TIMEOUT = 5.0


async def refuse_redirects(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Raise RedirectRefused for a redirect answer before aiohttp follows it.

    A session middleware sees every request of every notifier, client libraries' own
    requests (slack-sdk's) included, so no notifier can forget `allow_redirects=False`.
    """
    response = await handler(request)
    if response.status in REDIRECT_STATUSES:
        location = response.headers.get("Location", "")
        response.release()
        raise RedirectRefused(response.status, location, str(request.url))
    return response


def notifier_session(notifiers: Sequence[NotifierConfig]) -> aiohttp.ClientSession:
    timeout = max((n.timeout for n in notifiers), default=DEFAULT_TIMEOUT)
    # slack-sdk ignores its own timeout when given a session; the session's is the one applied.
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(MAX_CONNECT_TIMEOUT, timeout)
        ),
        middlewares=(refuse_redirects,),
    )
