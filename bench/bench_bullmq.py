"""Cost of one bullmq collection for 7 queues and for 1,000 queues (run by hand).

    .venv/bin/python bench/bench_bullmq.py [--runs 200] [--big-runs 30]

Starts its own redis-server on a free port, fills the queues with the real `bullmq`
package (waiting, delayed, prioritized, completed jobs) and names 20 connections the way
BullMQ for Node names its workers, so CLIENT LIST has something to parse. Then it times
`BullMQCheck.run()` (the collection) and `CheckRunner.run()` (collection plus judging every
sample against limits), and counts round trips as pipeline executions, next to the
commands Redis processed (`INFO commandstats`) and its read events (`total_reads_processed`;
a large pipeline arrives in several 16 KiB reads but is still one round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from bullmq import Queue
from redis.asyncio.client import Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe.checks.bullmq import BullMQCheck, BullMQConfig
from probe.runner import CheckRunner

APP_QUEUES = [
    "billing", "email", "whatsapp", "ai-assistant", "receipt-ocr", "analytics", "webhooks"
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


class PipelineCounter:
    """Counts pipeline executions: one execution is one round trip to Redis."""

    def __init__(self) -> None:
        self.count = 0
        self._original: Callable[..., Awaitable[Any]] = Pipeline.execute

    def __enter__(self) -> PipelineCounter:
        original = self._original

        async def counted(pipe: Pipeline, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(pipe, *args, **kwargs)

        setattr(Pipeline, "execute", counted)  # noqa: B010 - bench-only instrumentation
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(Pipeline, "execute", self._original)  # noqa: B010


async def seed(url: str, names: list[str], jobs_per_queue: int) -> None:
    shared = aioredis.from_url(url, decode_responses=True)
    for name in names:
        queue = Queue(name, {"connection": shared})
        for i in range(jobs_per_queue):
            await queue.add("job", {"i": i})
        await queue.add("later", {}, {"delay": 3_600_000})
        await queue.add("urgent", {}, {"priority": 3})
    await shared.aclose()


async def name_worker_connections(url: str, queues: list[str], n: int) -> list[aioredis.Redis]:
    conns = []
    for i in range(n):
        queue = queues[i % len(queues)]
        conn = aioredis.from_url(url, single_connection_client=True)
        await conn.client_setname(f"bull:{base64.b64encode(queue.encode()).decode()}:w:{i}")
        conns.append(conn)
    return conns


async def server_counters(admin: aioredis.Redis) -> tuple[int, int]:
    """(read events, commands) so far, not counting the INFO calls made here."""
    reads = int((await admin.info("stats"))["total_reads_processed"])
    stats = await admin.info("commandstats")
    commands = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    return reads, commands


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


async def measure(url: str, queues: list[str], runs: int) -> None:
    config = BullMQConfig.model_validate(
        {"name": "queues", "type": "bullmq", "url": url, "queues": queues,
         "warn": {"backlog": 1000, "oldest_waiting_age": "5m"}, "fail": {"workers": "<1"}}
    )  # fmt: skip
    check = BullMQCheck(config)
    runner = CheckRunner(check)
    report = await check.run()  # connect outside the timings
    with PipelineCounter() as trips:
        await check.run()
    admin = aioredis.from_url(url)
    before = await server_counters(admin)
    await check.run()
    after = await server_counters(admin)
    await admin.aclose()
    # - 2: the two INFO requests of the first server_counters() read after its counter.
    reads, commands = after[0] - before[0] - 2, after[1] - before[1]

    collect = await timed(check.run, runs)
    judged = await timed(runner.run, runs)
    await runner.close()

    print(f"{len(queues):>5} queues: {len(report.samples):>6} samples, {trips.count} round "
          f"trips, {commands} commands, {reads} server read events")  # fmt: skip
    for label, times in (("collection", collect), ("collection + judging", judged)):
        ms = sorted(t * 1000 for t in times)
        p90 = ms[int(len(ms) * 0.9) - 1]
        print(f"       {label:<22} median {statistics.median(ms):7.2f} ms   "
              f"p90 {p90:7.2f} ms   min {ms[0]:7.2f} ms   (n={len(ms)})")  # fmt: skip


async def main(runs: int, big_runs: int) -> None:
    with redis_server() as url:
        many = [f"queue-{i:04d}" for i in range(1000)]
        started = time.perf_counter()
        await seed(url, APP_QUEUES, jobs_per_queue=50)
        await seed(url, many, jobs_per_queue=2)
        conns = await name_worker_connections(url, APP_QUEUES, 20)
        print(f"seeded in {time.perf_counter() - started:.1f}s; redis at {url}")
        await measure(url, APP_QUEUES, runs)
        await measure(url, many, big_runs)
        for conn in conns:
            await conn.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs for 7 queues")
    parser.add_argument("--big-runs", type=int, default=30, help="timed runs for 1,000 queues")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.big_runs))
