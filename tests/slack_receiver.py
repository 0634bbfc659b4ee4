"""A local stand-in for Slack: records webhook and chat.postMessage requests.

Answers 200 by default; `plan(...)` queues answers for the next requests (429 with a
Retry-After, 500, 404, a body that is not what Slack sends, or no answer at all), and
`refuse()` / `accept()` close and reopen the port so clients see a refused connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.support import LocalSite


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    retry_after: str | None = None
    body: str | None = None  # sent as text/plain instead of the usual answer
    hang: bool = False  # accept the request and never answer it


@dataclass(slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the receiver answered


@dataclass
class SlackReceiver(LocalSite):
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _plan: list[Answer] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _arrived: asyncio.Condition | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/secretpart"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def delivered(self) -> list[dict[str, Any]]:
        """Bodies that were answered with 200."""
        return [r.body for r in self.received if r.status == 200]

    def plan(self, *answers: Answer) -> None:
        self._plan.extend(answers)

    async def start(self) -> SlackReceiver:
        app = web.Application()
        app.router.add_post("/services/{path:.*}", self._webhook)
        app.router.add_post("/api/chat.postMessage", self._post_message)
        self._arrived = asyncio.Condition()
        await self.serve(app)
        return self

    async def close(self) -> None:
        await self.stop_serving()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `count` messages were delivered (answered 200)."""
        assert self._arrived is not None
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.delivered) >= count)
        return self.delivered

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> Answer:
        answer = self._plan.pop(0) if self._plan else Answer()
        self.received.append(Received(request.path, dict(request.headers), body, answer.status))
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()
        return answer

    async def _webhook(self, request: web.Request) -> web.Response:
        answer = await self._answer(request, await request.json())
        if answer.hang or answer.body is not None:
            return await _unusual(answer)
        headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
        if answer.status == 200:
            return _closing(web.Response(text="ok"))
        return _closing(web.Response(status=answer.status, text="rate_limited", headers=headers))

    async def _post_message(self, request: web.Request) -> web.Response:
        answer = await self._answer(request, await request.json())
        if answer.hang or answer.body is not None:
            return await _unusual(answer)
        headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
        if answer.status == 200:
            body = {"ok": True, "channel": "C000", "ts": "1700000000.000100"}
        else:
            body = {"ok": False, "error": "ratelimited" if answer.status == 429 else "fatal"}
        return _closing(
            web.Response(
                status=answer.status,
                text=json.dumps(body),
                content_type="application/json",
                headers=headers,
            )
        )


async def _unusual(answer: Answer) -> web.Response:
    if answer.hang:
        await asyncio.Event().wait()  # until close() cancels the handler
    return _closing(web.Response(status=answer.status, text=answer.body or ""))


def _closing(response: web.Response) -> web.Response:
    # No keep-alive: after refuse() the next request must meet the closed port.
    response.force_close()
    return response


@pytest.fixture
async def receiver() -> AsyncIterator[SlackReceiver]:
    """A started stand-in for Slack (and any webhook receiver), closed after the test."""
    stand_in = await SlackReceiver().start()
    yield stand_in
    await stand_in.close()
