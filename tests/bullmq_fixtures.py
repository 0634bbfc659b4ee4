"""Fixtures of the job-outcome tests: a flushed db of the private Redis, the check made as
the agent makes it, and a TCP proxy that counts the bytes Redis sends to the probe."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from probe.checks.bullmq import BullMQCheck, BullMQConfig
from probe.engine.runner import CheckRunner
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


# A job scheduler whose worker runs it twice, then stops: its next run goes overdue.
SCHEDULER = r"""
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
(async () => {
  const q = new Queue("billing", { connection });
  await q.upsertJobScheduler("usage-aggregation", { every: 1000 }, { name: "aggregate" });
  let completed = 0;
  const w = new Worker("billing", async () => "summed", { connection });
  w.on("completed", () => { completed += 1; });
  const deadline = Date.now() + 10000;
  while (completed < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await w.close();  // the worker stops: nothing promotes the next iteration any more
  const next = await connection.zscore("bull:billing:repeat", "usage-aggregation");
  console.log(JSON.stringify({ completed, next: Number(next) }));
  await q.close();
  await connection.quit();
})();
"""
