"""One GET of a vendor's small JSON document, for the checks that read one (statuspage,
domain): the http check's resolver and body cap, and failures in the network's words."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from probe import __version__
from probe.checks.errors import failure
from probe.checks.http import HttpResolver, read_limited
from probe.core.networds import address, network_words


def where_of(url: str) -> str:
    """`host:port` of a URL, the port its scheme implies when none is given."""
    parts = urlsplit(url)
    return address(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))


class Fetcher:
    """One connection, opened on the first GET and closed with the check."""

    def __init__(self, timeout: float, accept: str) -> None:
        self.timeout = timeout
        self.accept = accept
        self._session: aiohttp.ClientSession | None = None

    async def get(self, url: str) -> tuple[int, bytes]:
        """The status and (capped) body; a failure to get them raises CheckFailed."""
        try:
            async with self._open().get(url) as response:
                return response.status, await read_limited(response)
        except aiohttp.ClientError as exc:
            host = urlsplit(url).hostname or ""
            raise failure(exc, network_words(exc, host, where_of(url))) from None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=1, resolver=HttpResolver()),
                headers={"User-Agent": f"probe/{__version__}", "Accept": self.accept},
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
