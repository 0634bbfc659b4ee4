"""Fixtures of the job-outcome tests: a flushed db of the private Redis, the check made as
the agent makes it, and a TCP proxy that counts the bytes Redis sends to the probe."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from probe.checks.bullmq import BullMQCheck, BullMQConfig
from probe.runner import CheckRunner

DB = 12  # only these tests use it; flushed before and after each


def flushed_db(redis_server: tuple[str, int], db: int) -> Iterator[str]:
    """The URL of one db of the private Redis, empty before and after the test."""
    host, port = redis_server
    plain = redis.Redis(host=host, port=port, db=db)
    plain.flushdb()
    yield f"redis://{host}:{port}/{db}"
    plain.flushdb()
    plain.close()


@pytest.fixture
def outcome_url(redis_server: tuple[str, int]) -> Iterator[str]:
    yield from flushed_db(redis_server, DB)


def bullmq_config(url: str, queues: list[str], **fields: Any) -> BullMQConfig:
    """A bullmq check named `queues` on `url`, with whatever else the test sets."""
    raw = {"name": "queues", "type": "bullmq", "url": url, "queues": queues, **fields}
    return BullMQConfig.model_validate(raw)


@contextlib.asynccontextmanager
async def check_runner(config: BullMQConfig) -> AsyncIterator[CheckRunner]:
    runner = CheckRunner(BullMQCheck(config))
    try:
        yield runner
    finally:
        await runner.close()


class CountingProxy:
    """Forwards to Redis and counts what Redis sends back (the probe's read bytes)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.from_server = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        both = [
            asyncio.create_task(self._pipe(reader, up_writer, count=False)),
            asyncio.create_task(self._pipe(up_reader, writer, count=True)),
        ]
        self._tasks.update(both)
        await asyncio.gather(*both, return_exceptions=True)
        self._tasks.difference_update(both)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if count:
                    self.from_server += len(chunk)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None


@pytest.fixture
async def counting_proxy(redis_server: tuple[str, int]) -> AsyncIterator[CountingProxy]:
    proxy = await CountingProxy(*redis_server).start()
    yield proxy
    await proxy.close()
