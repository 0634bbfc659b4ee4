"""Scrape cost of /metrics with 50 checks and 7 BullMQ queues configured. Run by hand:

    .venv/bin/python bench/bench_metrics.py [--requests 3000] [--concurrency 10]

The store is fed synthetic results (CheckResult/Observation, the shapes the real checks
produce: 50 tcp checks, one bullmq check with 7 queues, one system check), so the figure
is the cost of the collector and the exposition, not of any check. The server runs in a
child process with the agent's own routes (probe.web.routes.build_app), so client and server
do not share a CPU core's event loop. Prints the body size, the in-process cost of one
`generate_latest`, and requests per second over HTTP, plain text and gzip.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe.checks.bullmq import JOB_STATES as QUEUE_STATES
from probe.contract.config import AgentConfig, AlertsConfig, Config
from probe.contract.plugin import CheckConfig
from probe.core.model import CheckResult, Observation, Status, Unit
from probe.engine.metrics import build_registry
from probe.engine.store import ResultStore
from probe.web.routes import build_app
from probe.web.settings import LiveSettings

TCP_CHECKS = 50
QUEUES = ["billing", "email", "whatsapp", "ai-assistant", "receipt-ocr", "analytics", "webhooks"]
RUNS_PER_CHECK = 20


def bench_config() -> Config:
    checks = [CheckConfig(name=f"tcp-{i:02d}", type="tcp") for i in range(TCP_CHECKS)]
    checks += [CheckConfig(name="queues", type="bullmq"), CheckConfig(name="system", type="system")]
    return Config(
        source="bench", agent=AgentConfig(version="bench"), checks=checks, alerts=AlertsConfig()
    )


def _obs(component: str, measure: str, value: float, unit: Unit, note: str = "") -> Observation:
    return Observation(component, measure, value, unit, Status.PASS, note=note)


def queue_observations() -> list[Observation]:
    found = []
    for n, queue in enumerate(QUEUES):
        found += [
            _obs(queue, state, float(n * 10 + i), Unit.COUNT)
            for i, state in enumerate(QUEUE_STATES)
        ]
        found += [
            _obs(queue, "backlog", 12.0, Unit.COUNT),
            _obs(queue, "oldest_waiting_age", 3.5, Unit.SECONDS),
            _obs(queue, "workers", 2.0, Unit.COUNT),
        ]
    return found


def system_observations() -> list[Observation]:
    return [
        _obs("cpu", "cpu", 0.12, Unit.RATIO, "cgroup v1"),
        _obs("cpu", "host_cpu", 0.2, Unit.RATIO, "host"),
        _obs("memory", "memory", 0.3, Unit.RATIO, "cgroup v1"),
        _obs("memory", "memory_bytes", 3e8, Unit.BYTES, "cgroup v1"),
        _obs("memory", "memory_limit_bytes", 1e9, Unit.BYTES, "cgroup v1"),
        _obs("memory", "host_memory", 0.4, Unit.RATIO, "host"),
        _obs("memory", "host_memory_bytes", 4e9, Unit.BYTES, "host"),
        _obs("memory", "host_memory_limit_bytes", 1e10, Unit.BYTES, "host"),
    ]


def fed_store() -> ResultStore:
    store = ResultStore(bench_config())
    extra = {"queues": tuple(queue_observations()), "system": tuple(system_observations())}
    for run in range(RUNS_PER_CHECK):
        for name in store.check_names():
            status = Status.FAIL if run % 7 == 0 else Status.PASS
            response = (_obs("", "response_time", 0.002 * (run + 1), Unit.SECONDS),)
            result = CheckResult(
                status, 0.002 * (run + 1), "", time.time(), response + extra.get(name, ())
            )
            store.record(name, result)
    return store


def time_generate_latest(registry: CollectorRegistry, rounds: int = 300) -> list[float]:
    durations = []
    for _ in range(rounds):
        started = time.perf_counter()
        generate_latest(registry)
        durations.append(time.perf_counter() - started)
    return durations


async def serve_forever() -> None:
    store = fed_store()
    runner = web.AppRunner(
        build_app(store, LiveSettings.of(store.config.agent), build_registry(store, None)),
        access_log=None,
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


async def hammer(url: str, requests: int, concurrency: int, gzip: bool) -> tuple[float, int]:
    """(requests per second, body bytes) for `requests` GETs from `concurrency` workers."""
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    remaining = requests
    size = 0

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal remaining, size
        while remaining > 0:
            remaining -= 1
            async with http.get(url, headers=headers, auto_decompress=False) as resp:
                body = await resp.read()
                assert resp.status == 200, resp.status
                size = len(body)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_forever())
        return

    store = fed_store()
    registry = build_registry(store, None)
    body = generate_latest(registry)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    durations = time_generate_latest(registry)
    print(
        f"checks configured: {len(store.check_names())} ({TCP_CHECKS} tcp, bullmq with "
        f"{len(QUEUES)} queues, system); series: {series}; body: {len(body):,} bytes"
    )
    print(
        f"generate_latest in process: median {statistics.median(durations) * 1000:.2f} ms, "
        f"p95 {sorted(durations)[int(len(durations) * 0.95)] * 1000:.2f} ms"
    )

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/metrics"
        for gzip in (False, True):
            asyncio.run(hammer(url, 200, args.concurrency, gzip))  # warm-up
            rate, size = asyncio.run(hammer(url, args.requests, args.concurrency, gzip))
            kind = "gzip" if gzip else "plain"
            print(
                f"HTTP /metrics ({kind}, {size:,} bytes): {rate:,.0f} requests/s "
                f"({args.requests} requests, concurrency {args.concurrency})"
            )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
