"""`agent.heartbeat`: an outgoing dead-man's switch, in healthchecks.io's semantics.

Every `every`, GET `url` while the scheduler makes progress (what /live judges), or
`url/fail` when it has stalled. A probe that dies or freezes sends nothing, and the
receiver (healthchecks.io, Cronitor, or another probe's `heartbeat` check) alerts on the
silence. The URL usually carries a secret in its path: logs name only its origin.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from probe.contract.config.schema import HeartbeatConfig
from probe.core.networds import first_line
from probe.core.redact import url_origin
from probe.core.tasks import cancel_and_wait
from probe.engine.store import ResultStore

log = logging.getLogger("probe.heartbeat")


class Heartbeat:
    def __init__(self, config: HeartbeatConfig, store: ResultStore, live_timeout: float) -> None:
        self.url = config.url.get_secret_value()
        self.every = config.every
        self.timeout = config.timeout
        self.store = store
        self.live_timeout = live_timeout
        self.where = url_origin(self.url)
        token = config.token.get_secret_value()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.sent = {"ok": 0, "fail": 0, "error": 0}
        self._problem = ""
        self._stalled = False
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._task = asyncio.create_task(self._loop(), name="heartbeat out")
        log.info("heartbeat to %s every %gs", self.where, self.every)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            await self.beat()
            await asyncio.sleep(max(0.0, self.every - (time.monotonic() - started)))

    async def beat(self) -> None:
        alive = self.store.is_alive(self.live_timeout)
        url = self.url if alive else self.url + "/fail"
        if alive == self._stalled:  # said once per stall, not once per beat
            self._stalled = not alive
            if self._stalled:
                log.warning("heartbeat: the scheduler has stalled; telling %s", self.where)
            else:
                log.info("heartbeat: the scheduler makes progress again")
        assert self._session is not None
        try:
            async with self._session.get(
                url, headers=self.headers, allow_redirects=False
            ) as response:
                await response.read()
                ok = response.status < 400
                words = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok, words = False, (
                f"no answer within {self.timeout:g}s" if isinstance(exc, TimeoutError)
                else first_line(exc).replace(self.url, self.where)
            )  # fmt: skip
        if ok:
            self.sent["ok" if alive else "fail"] += 1
            if self._problem:
                log.info("heartbeat: %s answers again", self.where)
            self._problem = ""
            return
        self.sent["error"] += 1
        if words != self._problem:  # one line per outage, not one per beat
            log.warning("heartbeat to %s failed: %s", self.where, words)
        self._problem = words
