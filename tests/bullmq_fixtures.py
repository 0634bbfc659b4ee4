"""Fixtures of the job-outcome tests: a flushed db of the private Redis, the check made as
the agent makes it, and a TCP proxy that counts the bytes Redis sends to the probe."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from probe.checks.bullmq import BullMQCheck, BullMQConfig
from probe.runner import CheckRunner
from tests.faultproxy import FaultProxy

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


@pytest.fixture
async def counting_proxy(redis_server: tuple[str, int]) -> AsyncIterator[FaultProxy]:
    """A proxy in front of the private Redis that counts the bytes Redis sends back."""
    proxy = await FaultProxy(*redis_server).start()
    yield proxy
    await proxy.close()
