"""Between runs a check is a timer on the loop, not a sleeping task (a task, its coroutine
and its sleep cost about 1 KB a check): checks keep running on their interval, and the
only check tasks are the runs in progress."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from probe.contract.config import load_config
from probe.core.model import Status
from probe.engine.factory import build_runner
from probe.engine.scheduler import Scheduler
from probe.engine.store import ResultStore

CHECKS = 20


def check_tasks() -> int:
    return sum(1 for task in asyncio.all_tasks() if task.get_name().startswith("check:"))


async def test_idle_checks_hold_no_task_and_keep_running(write_config: Any) -> None:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    checks = "\n".join(
        f"  - {{ name: c{i}, type: tcp, host: 127.0.0.1, port: {port} }}" for i in range(CHECKS)
    )
    config = load_config(
        write_config(
            "agent: { history: 'off' }\ndefaults: { interval: 1s, timeout: 900ms }\n"
            f"checks:\n{checks}\n"
        ),
        environ={},
    )
    store = ResultStore(config)
    scheduler = Scheduler(store)
    names = [c.name for c in config.checks]
    scheduler.start([build_runner(c) for c in config.checks])
    try:
        deadline = time.monotonic() + 10
        while any(store.stats(n).duration_count < 3 for n in names):
            assert time.monotonic() < deadline, "checks stopped running"
            await asyncio.sleep(0.05)
        # Runs take a millisecond a second: most samples find no run in progress.
        samples = []
        for _ in range(10):
            samples.append(check_tasks())
            await asyncio.sleep(0.05)
        assert min(samples) == 0, samples
        assert all((r := store.latest(n)) and r.status is Status.PASS for n in names)
    finally:
        await scheduler.shutdown()
        server.close()
        await server.wait_closed()
    assert check_tasks() == 0
