"""Cost of one bullmq collection for 7 queues and for 1,000 queues (run by hand), and
of reading the job outcomes of a queue that finishes 1,000 jobs a second.

    .venv/bin/python bench/bench_bullmq.py [--runs 200] [--big-runs 30] [--busy-seconds 10]

Starts its own redis-server on a free port, fills the queues with the real `bullmq`
package (waiting, delayed, prioritized, completed jobs) and names 20 connections the way
BullMQ for Node names its workers, so CLIENT LIST has something to parse. Then it times
`BullMQCheck.run()` (the collection) and `CheckRunner.run()` (collection plus judging every
sample against limits), and counts round trips as pipeline executions, next to the
commands Redis processed (`INFO commandstats`) and its read events (`total_reads_processed`;
a large pipeline arrives in several 16 KiB reads but is still one round trip).

The busy queue is run by the real BullMQ for Node (tests/node, npm bullmq@6): a producer
adding 100 jobs every 100 ms and a worker (concurrency 100) finishing them, 1 in 50
failing, each returning 1 KB. The check runs once a second behind a TCP proxy that
counts the bytes Redis sends it; Redis's own `usec_per_call` of the script says how long
the server was busy with it. A second pass at the default stream length (10,000) and a
5 s interval shows what trimming does at that rate.
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
from probe.engine.runner import CheckRunner
from tests.node_bullmq import start_node

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

    admin = aioredis.from_url(url)
    await admin.config_resetstat()
    collect = await timed(check.run, runs)
    judged = await timed(runner.run, runs)
    await runner.close()
    script = (await admin.info("commandstats")).get("cmdstat_evalsha_ro", {})
    await admin.aclose()

    print(f"{len(queues):>5} queues: {len(report.samples):>6} samples, {trips.count} round "
          f"trips, {commands} commands, {reads} server read events")  # fmt: skip
    print(f"       job-outcome script on the server: {script.get('usec_per_call', 0)} us "
          "per queue and run")  # fmt: skip
    for label, times in (("collection", collect), ("collection + judging", judged)):
        ms = sorted(t * 1000 for t in times)
        p90 = ms[int(len(ms) * 0.9) - 1]
        print(f"       {label:<22} median {statistics.median(ms):7.2f} ms   "
              f"p90 {p90:7.2f} ms   min {ms[0]:7.2f} ms   (n={len(ms)})")  # fmt: skip


BUSY = r"""
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");
const conn = () => new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
const maxLen = Number(process.env.MAXLEN);
(async () => {
  const q = new Queue("webhooks", { connection: conn(), streams: { events: { maxLen } },
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
  const payload = "y".repeat(1000);
  const work = async (job) => {
    if (job.data.i % 50 === 0) throw new Error("partner answered 502");
    return payload;
  };
  new Worker("webhooks", work, { connection: conn(), concurrency: 100 });
  let i = 0;
  setInterval(() => {
    const jobs = Array.from({ length: 100 }, () => ({ name: "hook", data: { i: i++ } }));
    q.addBulk(jobs);
  }, 100);
  console.log("started");
})();
"""


class CountingProxy:
    """Forwards to Redis and counts the bytes Redis sends back to the probe."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.from_server = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(reader, up_writer, False),
            self._pipe(up_reader, writer, True),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                self.from_server += len(chunk) if count else 0
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def busy_queue(url: str, seconds: int, max_len: int, interval: float) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    db = 1 if max_len == 10_000 else 0
    admin = aioredis.from_url(f"redis://127.0.0.1:{port}/{db}", decode_responses=True)
    await admin.flushdb()
    node = start_node(BUSY, f"redis://127.0.0.1:{port}/{db}", {"MAXLEN": str(max_len)})
    proxy = await CountingProxy(port).start()
    config = BullMQConfig.model_validate(
        {"name": "queues", "type": "bullmq", "url": f"redis://127.0.0.1:{proxy.port}/{db}",
         "queues": ["webhooks"], "timeout": "900ms" if interval <= 1 else "4s",
         "interval": f"{interval}s"}
    )  # fmt: skip
    check = BullMQCheck(config)
    try:
        assert node.stdout is not None
        await asyncio.wait_for(asyncio.to_thread(node.stdout.readline), 30)
        await asyncio.sleep(2)  # warm up
        await check.run()  # the fresh window starts here
        await admin.config_resetstat()
        started = time.monotonic()
        times: list[float] = []
        sizes: list[int] = []
        totals: dict[str, float] = {}
        while time.monotonic() - started < seconds:
            await asyncio.sleep(interval)
            before = proxy.from_server
            t0 = time.perf_counter()
            report = await check.run()
            times.append(time.perf_counter() - t0)
            sizes.append(proxy.from_server - before)
            totals = {s.measure: float(s.value or 0) for s in report.samples}
        elapsed = time.monotonic() - started
        stats = (await admin.info("commandstats")).get("cmdstat_evalsha_ro", {})
        lost = int(totals.get("events_lost_total", 0))
        finished = totals.get("completed_total", 0) + totals.get("failed_total", 0)
        ms = sorted(t * 1000 for t in times)
        print(f"  busy queue, maxLenEvents {max_len:,}, a run every {interval:g}s for "
              f"{elapsed:.0f}s: {finished / elapsed:,.0f} jobs/s counted "
              f"({totals.get('failed_total', 0):,.0f} failed), {lost:,} entries lost")  # fmt: skip
        print(f"       run time median {statistics.median(ms):.2f} ms, max {ms[-1]:.2f} ms; "
              f"bytes read per run median {statistics.median(sizes):,.0f}, max {max(sizes):,}; "
              f"script on the server {float(stats.get('usec_per_call', 0)) / 1000:.2f} ms "
              f"per call")  # fmt: skip
    finally:
        await check.close()
        await proxy.close()
        node.kill()
        node.wait(10)
        for pipe in (node.stdout, node.stderr):
            if pipe is not None:
                pipe.close()
        await admin.flushdb()
        await admin.aclose()


async def main(runs: int, big_runs: int, busy_seconds: int) -> None:
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
        if busy_seconds:
            await busy_queue(url, busy_seconds, max_len=100_000, interval=1.0)
            await busy_queue(url, busy_seconds, max_len=10_000, interval=5.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs for 7 queues")
    parser.add_argument("--big-runs", type=int, default=30, help="timed runs for 1,000 queues")
    parser.add_argument(
        "--busy-seconds", type=int, default=10, help="seconds of the 1,000 jobs/s queue (0: skip)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.big_runs, args.busy_seconds))
