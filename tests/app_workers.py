"""The app's real workers (Node BullMQ), one per queue, started and killed by a test."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.node_bullmq import start_node

QUEUES = ["billing", "email", "whatsapp", "ai-assistant", "receipt-ocr", "analytics", "webhooks"]

WORKERS = r"""
const { Worker } = require("bullmq");
const queues = JSON.parse(process.env.QUEUES);
const slow = process.env.SLOW || "";
const workers = queues.map((name) => new Worker(name, async () => {
  if (name === slow) await new Promise((done) => setTimeout(done, 120000));
}, { connection: { url: process.env.REDIS_URL, maxRetriesPerRequest: null } }));
Promise.all(workers.map((w) => w.waitUntilReady()))
  .then(() => console.log(JSON.stringify({ ready: workers.length })));
"""


class Workers:
    """The app's worker processes: started, killed (SIGKILL, as an OOM kill does)."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.procs: list[subprocess.Popen[str]] = []

    async def start(self, slow: str = "") -> None:
        env = {"QUEUES": json.dumps(QUEUES), "SLOW": slow}
        proc = start_node(WORKERS, self.redis_url, env=env)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        assert json.loads(line) == {"ready": len(QUEUES)}, proc.stderr

    def kill(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self.procs.clear()


@pytest.fixture
def workers(redis_url: str) -> Iterator[Workers]:
    found = Workers(redis_url)
    yield found
    found.kill()
