"""The one HTTP session all notifiers of a service share."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from probe.contract import NotifierConfig

DEFAULT_TIMEOUT = 10.0
MAX_CONNECT_TIMEOUT = 5.0


def notifier_session(notifiers: Sequence[NotifierConfig]) -> aiohttp.ClientSession:
    timeout = max((n.timeout for n in notifiers), default=DEFAULT_TIMEOUT)
    # slack-sdk ignores its own timeout when given a session; the session's is the one applied.
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(MAX_CONNECT_TIMEOUT, timeout))
    )
