"""The bullmq check against real queues made by the real `bullmq` package on a private Redis.

Every count is compared with what `Queue.getJobCounts()` of the same package says for the
same Redis, state by state, because "matches BullMQ" is the promise users rely on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from bullmq import Queue, Worker

from probe.checks.bullmq import JOB_STATES, BullMQCheck, BullMQConfig
from probe.contract.config import ConfigError, load_config
from probe.core.model import CheckResult, Observation, Status
from probe.engine.factory import build_runner
from probe.engine.runner import CheckRunner
from tests.bullmq_fixtures import bullmq_config, flushed_db
from tests.conftest import free_port
from tests.faultproxy import FaultProxy, Mode

DB = 5  # a db of the private Redis of our own, so other tests' keys never show up here
WriteConfig = Callable[..., Path]


@pytest.fixture
def bull_url(redis_server: tuple[str, int]) -> Iterator[str]:
    yield from flushed_db(redis_server, DB)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    """Closes every Queue, Worker and runner a test opened, even when it fails."""
    async with AsyncExitStack() as exits:
        yield exits


async def run_check(stack: AsyncExitStack, config: BullMQConfig) -> CheckResult:
    runner = CheckRunner(BullMQCheck(config))
    stack.push_async_callback(runner.close)
    return await runner.run()


def observed(result: CheckResult, queue: str) -> dict[str, Observation]:
    return {o.measure: o for o in result.observations if o.component == queue}


def values(result: CheckResult, queue: str) -> dict[str, float | None]:
    return {measure: o.value for measure, o in observed(result, queue).items()}


async def open_queue(stack: AsyncExitStack, url: str, name: str, prefix: str = "bull") -> Queue:
    queue = Queue(name, {"connection": url, "prefix": prefix})
    stack.push_async_callback(queue.close)
    return queue


async def start_worker(
    stack: AsyncExitStack,
    url: str,
    queue_name: str,
    handler: Callable[[Any, str], Awaitable[Any]],
    **opts: Any,
) -> Worker:
    worker = Worker(queue_name, handler, {"connection": url, **opts})
    stack.push_async_callback(worker.close)
    return worker


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def finish_some_jobs(stack: AsyncExitStack, url: str, queue: Queue, prefix: str) -> None:
    """3 completed and 2 failed jobs, by a real worker that is closed afterwards."""
    for i in range(3):
        await queue.add("ok", {"i": i})
    for i in range(2):
        await queue.add("boom", {"i": i})

    async def process(job: Any, token: str) -> str:
        if job.name == "boom":
            raise RuntimeError("fixture failure")
        return "done"

    worker = await start_worker(stack, url, queue.name, process, prefix=prefix)

    async def all_finished() -> bool:
        counts = await queue.getJobCounts("completed", "failed")
        return bool(counts["completed"] == 3 and counts["failed"] == 2)

    await wait_for(all_finished)
    await worker.close()


async def hold_one_job(stack: AsyncExitStack, url: str, queue: Queue, prefix: str) -> None:
    """A worker that takes one job and keeps it active until the test ends."""
    release = asyncio.Event()

    async def process(job: Any, token: str) -> None:
        await release.wait()

    await start_worker(stack, url, queue.name, process, prefix=prefix, concurrency=1)
    stack.callback(release.set)  # pushed last, so it runs before the worker's close

    async def one_active() -> bool:
        return bool((await queue.getJobCounts("active"))["active"] == 1)

    await wait_for(one_active)


# ---------------------------------------------------------------- counts


@pytest.mark.parametrize("prefix", ["bull", "myapp", "{bull}", "acme:jobs"])
async def test_every_state_count_equals_get_job_counts(
    bull_url: str, stack: AsyncExitStack, prefix: str
) -> None:
    queue = await open_queue(stack, bull_url, "ai-assistant", prefix)
    await finish_some_jobs(stack, bull_url, queue, prefix)
    for i in range(4):
        await queue.add("wait", {"i": i})
    await queue.add("later", {}, {"delay": 60_000})
    await queue.add("urgent", {}, {"priority": 1})
    await queue.add("urgent", {}, {"priority": 5})
    await hold_one_job(stack, bull_url, queue, prefix)  # takes one of the waiting jobs

    result = await run_check(stack, bullmq_config(bull_url, ["ai-assistant"], prefix=prefix))
    expected = await queue.getJobCounts(*JOB_STATES)

    got = values(result, "ai-assistant")
    assert {state: got[state] for state in JOB_STATES} == expected
    assert expected == {
        "waiting": 3,
        "paused": 0,
        "prioritized": 2,
        "active": 1,
        "delayed": 1,
        "completed": 3,
        "failed": 2,
        "waiting-children": 0,
    }
    assert got["backlog"] == 3 + 0 + 2
    assert got["is_paused"] == 0
    assert result.status is Status.PASS


async def test_paused_queue_keeps_its_jobs_in_the_backlog(
    bull_url: str, stack: AsyncExitStack
) -> None:
    queue = await open_queue(stack, bull_url, "billing")
    await queue.add("before", {})
    await queue.pause()
    await queue.add("while-paused", {})
    await queue.add("while-paused", {}, {"priority": 2})

    result = await run_check(stack, bullmq_config(bull_url, ["billing"]))

    got = values(result, "billing")
    assert await queue.isPaused()
    assert {s: got[s] for s in JOB_STATES} == await queue.getJobCounts(*JOB_STATES)
    assert got["is_paused"] == 1
    assert got["backlog"] == 3


async def test_bullmq_5_paused_list_is_counted_and_aged(
    bull_url: str, stack: AsyncExitStack
) -> None:
    """BullMQ 5 (PyPI bullmq 2.x) paused a queue by renaming `wait` to `paused`.

    The installed package writes BullMQ 6 layouts only, so the jobs are made by it and
    then moved exactly as v5's pause script did (RENAME wait paused; HSET meta paused 1).
    """
    queue = await open_queue(stack, bull_url, "email")
    enqueued_ms = int(time.time() * 1000) - 120_000
    await queue.add("old", {}, {"timestamp": enqueued_ms})
    await queue.add("new", {})
    raw = aioredis.from_url(bull_url, decode_responses=True)
    stack.push_async_callback(raw.aclose)
    await raw.rename("bull:email:wait", "bull:email:paused")
    await raw.hset("bull:email:meta", mapping={"paused": 1, "version": "bullmq:5.81.3"})

    result = await run_check(stack, bullmq_config(bull_url, ["email"]))

    got = values(result, "email")
    assert {s: got[s] for s in JOB_STATES} == await queue.getJobCounts(*JOB_STATES)
    assert (got["waiting"], got["paused"], got["backlog"], got["is_paused"]) == (0, 2, 2, 1)
    assert observed(result, "email")["is_paused"].note == "bullmq:5.81.3"
    assert got["oldest_waiting_age"] == pytest.approx(120, abs=1)


async def test_queue_that_does_not_exist_yet_is_empty_and_passes(
    bull_url: str, stack: AsyncExitStack
) -> None:
    result = await run_check(stack, bullmq_config(bull_url, ["receipt-ocr"], fail={"failed": 1}))

    assert result.status is Status.PASS
    got = values(result, "receipt-ocr")
    assert {s: got[s] for s in JOB_STATES} == dict.fromkeys(JOB_STATES, 0)
    assert got["backlog"] == 0
    assert got["oldest_waiting_age"] == 0
    assert got["workers"] == 0


# ---------------------------------------------------------------- oldest waiting age


async def test_oldest_waiting_age_is_the_age_of_the_next_job(
    bull_url: str, stack: AsyncExitStack
) -> None:
    queue = await open_queue(stack, bull_url, "whatsapp")
    enqueued_ms = int(time.time() * 1000) - 432_000  # 7m12s ago
    await queue.add("first", {}, {"timestamp": enqueued_ms})
    await queue.add("second", {})
    await queue.add("third", {})

    result = await run_check(
        stack, bullmq_config(bull_url, ["whatsapp", "email"], warn={"oldest_waiting_age": "5m"})
    )

    age = observed(result, "whatsapp")["oldest_waiting_age"]
    assert age.value == pytest.approx(time.time() - enqueued_ms / 1000, abs=1)
    assert values(result, "email")["oldest_waiting_age"] == 0
    assert result.status is Status.WARN
    assert result.output == "whatsapp oldest_waiting_age 7m12s > 5m"


async def test_oldest_waiting_age_counts_while_the_queue_is_paused(
    bull_url: str, stack: AsyncExitStack
) -> None:
    queue = await open_queue(stack, bull_url, "webhooks")
    enqueued_ms = int(time.time() * 1000) - 90_000
    await queue.add("first", {}, {"timestamp": enqueued_ms})
    await queue.pause()
    await queue.add("second", {})

    result = await run_check(stack, bullmq_config(bull_url, ["webhooks"]))

    assert values(result, "webhooks")["oldest_waiting_age"] == pytest.approx(90, abs=1)


# ---------------------------------------------------------------- workers


def node_name(queue: str, prefix: str = "bull") -> str:
    return f"{prefix}:{base64.b64encode(queue.encode()).decode()}"


async def named_connection(stack: AsyncExitStack, url: str, name: str) -> None:
    conn = aioredis.from_url(url, decode_responses=True, single_connection_client=True)
    stack.push_async_callback(conn.aclose)
    await conn.client_setname(name)


async def test_python_workers_are_counted_once_each(bull_url: str, stack: AsyncExitStack) -> None:
    queue = await open_queue(stack, bull_url, "analytics")

    async def idle(job: Any, token: str) -> None:
        return None

    await hold_one_job_after_add(stack, bull_url, queue)  # one worker, busy
    await start_worker(stack, bull_url, "analytics", idle)
    await start_worker(stack, bull_url, "analytics", idle, name="ocr-box-1")

    async def named() -> bool:
        return len(await queue.get_workers()) >= 6  # each Python worker names 2 connections

    await wait_for(named)
    result = await run_check(stack, bullmq_config(bull_url, ["analytics", "email"]))

    assert values(result, "analytics")["workers"] == 3
    assert values(result, "email")["workers"] == 0


async def hold_one_job_after_add(stack: AsyncExitStack, url: str, queue: Queue) -> None:
    await queue.add("long", {})
    await hold_one_job(stack, url, queue, "bull")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([node_name("ai-assistant")], 1),
        ([node_name("ai-assistant"), node_name("ai-assistant") + ":w:gpu-1"], 2),
        ([node_name("ai-assistant") + ":qe"], 0),  # QueueEvents, not a worker
        ([node_name("email")], 0),
        ([node_name("ai-assistant", "myapp")], 0),  # another prefix
    ],
)
async def test_node_workers_are_counted_like_get_workers(
    bull_url: str, stack: AsyncExitStack, names: list[str], expected: int
) -> None:
    for name in names:
        await named_connection(stack, bull_url, name)

    result = await run_check(stack, bullmq_config(bull_url, ["ai-assistant"]))

    assert values(result, "ai-assistant")["workers"] == expected


async def test_node_workers_under_a_custom_prefix(bull_url: str, stack: AsyncExitStack) -> None:
    await named_connection(stack, bull_url, node_name("billing", "{app}") + ":w:billing-1")

    result = await run_check(stack, bullmq_config(bull_url, ["billing"], prefix="{app}"))

    assert values(result, "billing")["workers"] == 1


async def test_no_worker_fails_with_the_queue_named(bull_url: str, stack: AsyncExitStack) -> None:
    await named_connection(stack, bull_url, node_name("email"))

    result = await run_check(
        stack, bullmq_config(bull_url, ["email", "billing"], fail={"workers": "<1"})
    )

    assert result.status is Status.FAIL
    assert result.output == "billing workers 0 < 1"


@contextlib.contextmanager
def acl_user(
    redis_server: tuple[str, int], user: str, password: str, rule: str, flush_scripts: bool = False
) -> Iterator[tuple[str, str]]:
    """A Redis user allowed everything but `rule`: its URL (database DB) and password."""
    host, port = redis_server
    admin = redis.Redis(host=host, port=port)
    admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all", rule
    )
    if flush_scripts:
        admin.script_flush()
    try:
        yield f"redis://{user}:{password}@{host}:{port}/{DB}", password
    finally:
        admin.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]
        admin.close()


@pytest.fixture
def acl_user_without_client(redis_server: tuple[str, int]) -> Iterator[tuple[str, str]]:
    with acl_user(redis_server, "probe", "s3cret-pw", "-client") as found:
        yield found


async def test_refused_client_list_is_reported_never_as_zero(
    redis_server: tuple[str, int],
    bull_url: str,
    stack: AsyncExitStack,
    acl_user_without_client: tuple[str, str],
) -> None:
    url, password = acl_user_without_client
    queue = await open_queue(stack, bull_url, "email")
    await queue.add("x", {})

    result = await run_check(stack, bullmq_config(url, ["email"], fail={"workers": "<1"}))

    workers = observed(result, "email")["workers"]
    assert workers.value is None
    assert workers.note == "CLIENT LIST refused"
    assert values(result, "email")["waiting"] == 1  # everything else is still measured
    assert result.status is Status.WARN
    assert result.output == "email workers unknown (CLIENT LIST refused)"
    assert password not in repr(result)


@pytest.fixture
def acl_user_without_scripts(redis_server: tuple[str, int]) -> Iterator[tuple[str, str]]:
    with acl_user(redis_server, "noscript", "s3cret-pw2", "-@scripting") as found:
        yield found


async def test_refused_scripts_make_outcomes_unknown_never_zero(
    redis_server: tuple[str, int],
    stack: AsyncExitStack,
    acl_user_without_scripts: tuple[str, str],
) -> None:
    url, password = acl_user_without_scripts

    result = await run_check(stack, bullmq_config(url, ["email"], warn={"failure_ratio": "10%"}))

    ratio = observed(result, "email")["failure_ratio"]
    assert ratio.value is None
    assert ratio.note == (
        "Redis refused the events read (EVALSHA_RO): "
        "this user has no permissions to run the 'evalsha_ro' command"
    )
    assert values(result, "email")["waiting"] == 0  # the counts are still measured
    assert result.status is Status.WARN
    assert result.output.startswith("email failure_ratio unknown (Redis refused the events")
    assert password not in repr(result)


async def test_outcomes_survive_a_script_flush(bull_url: str, stack: AsyncExitStack) -> None:
    """Scripts live in Redis's memory: after a restart (or SCRIPT FLUSH) the first run
    loads the script again and counts on from where it was."""
    queue = await open_queue(stack, bull_url, "email")
    runner = CheckRunner(BullMQCheck(bullmq_config(bull_url, ["email"])))
    stack.push_async_callback(runner.close)
    await runner.run()
    await finish_some_jobs(stack, bull_url, queue, "bull")
    admin = aioredis.from_url(bull_url)
    stack.push_async_callback(admin.aclose)
    await admin.script_flush()

    result = await runner.run()

    assert result.status is Status.PASS
    assert values(result, "email")["failed_total"] == 2
    assert values(result, "email")["completed_total"] == 3


async def test_refused_client_list_without_a_workers_limit_passes(
    redis_server: tuple[str, int],
    bull_url: str,
    stack: AsyncExitStack,
    acl_user_without_client: tuple[str, str],
) -> None:
    url, _ = acl_user_without_client

    result = await run_check(stack, bullmq_config(url, ["email"]))

    assert result.status is Status.PASS
    assert observed(result, "email")["workers"].note == "CLIENT LIST refused"


# ---------------------------------------------------------------- round trips


def calls(stats: dict[str, Any], command: str) -> int:
    entry = stats.get(f"cmdstat_{command}")
    return int(entry["calls"]) if entry else 0


QUEUES = ["billing", "email", "whatsapp", "ai-assistant", "receipt-ocr", "analytics", "webhooks"]


@pytest.mark.parametrize(("with_waiting", "round_trips"), [(0, 1), (2, 2)])
async def test_one_round_trip_for_all_queues(
    bull_url: str, stack: AsyncExitStack, with_waiting: int, round_trips: int
) -> None:
    """Round trips are counted on the server: each request the probe sends is one read
    event (`total_reads_processed`), and nothing else talks to this Redis meanwhile
    (the admin connection is set up before the counters are reset)."""
    async with AsyncExitStack() as producers:  # closed before measuring: no other traffic
        for name in QUEUES[:with_waiting]:
            queue = await open_queue(producers, bull_url, name)
            await queue.add("x", {})
    runner = CheckRunner(BullMQCheck(bullmq_config(bull_url, QUEUES)))
    stack.push_async_callback(runner.close)
    await runner.run()  # connects; the connection's setup commands are not what we count
    admin = aioredis.from_url(bull_url)
    stack.push_async_callback(admin.aclose)
    await admin.config_resetstat()

    result = await runner.run()
    reads = (await admin.info("stats"))["total_reads_processed"]
    stats = await admin.info("commandstats")

    assert result.status is Status.PASS
    assert reads == round_trips + 1  # + 1: the INFO that read the counter
    assert calls(stats, "llen") == 3 * len(QUEUES)
    assert calls(stats, "zcard") == 5 * len(QUEUES)
    assert calls(stats, "hmget") == len(QUEUES)
    assert calls(stats, "lrange") == 2 * len(QUEUES)
    assert calls(stats, "client|list") == 1
    assert calls(stats, "hget") == with_waiting
    assert calls(stats, "evalsha_ro") == len(QUEUES)  # the job outcomes, in the same trip
    assert calls(stats, "script|load") == 0  # loaded by the first run, once


async def test_connection_is_reused_and_closed(
    redis_server: tuple[str, int], bull_url: str
) -> None:
    admin = aioredis.from_url(bull_url)
    try:
        before = (await admin.info("clients"))["connected_clients"]
        check = BullMQCheck(bullmq_config(bull_url, QUEUES))
        runner = CheckRunner(check)
        for _ in range(3):
            assert (await runner.run()).status is Status.PASS
        during = (await admin.info("clients"))["connected_clients"]
        await runner.close()
        await check.close()  # a second close is harmless
        await asyncio.sleep(0.1)
        after = (await admin.info("clients"))["connected_clients"]
    finally:
        await admin.aclose()
    assert (during - before, after - before) == (1, 0)


# ---------------------------------------------------------------- failures


async def test_unreachable_redis_fails_with_plain_words(stack: AsyncExitStack) -> None:
    port = free_port()
    result = await run_check(stack, bullmq_config(f"redis://:pw-123@127.0.0.1:{port}/0", QUEUES))

    assert result.status is Status.FAIL
    assert result.output == f"connection refused (127.0.0.1:{port})"


async def test_silent_redis_times_out(redis_proxy: FaultProxy, stack: AsyncExitStack) -> None:
    redis_proxy.set(Mode.BLACKHOLE)
    url = f"redis://127.0.0.1:{redis_proxy.port}/{DB}"

    started = time.monotonic()
    result = await run_check(stack, bullmq_config(url, QUEUES, timeout="300ms", interval="1s"))

    assert result.status is Status.FAIL
    assert result.output == "timed out after 300ms"
    assert time.monotonic() - started < 3


async def test_recovers_when_redis_comes_back(
    redis_proxy: FaultProxy, bull_url: str, stack: AsyncExitStack
) -> None:
    url = f"redis://127.0.0.1:{redis_proxy.port}/{DB}"
    queue = await open_queue(stack, bull_url, "email")
    await queue.add("x", {})
    config = bullmq_config(url, ["email"], timeout="300ms", interval="1s")
    runner = CheckRunner(BullMQCheck(config))
    stack.push_async_callback(runner.close)
    assert (await runner.run()).status is Status.PASS

    redis_proxy.set(Mode.REFUSE)  # cuts the pooled connection, then closes new ones
    down = await runner.run()
    redis_proxy.set(Mode.DELAY, delay=1.0)  # replies arrive after the deadline
    slow = await runner.run()
    redis_proxy.set(Mode.FORWARD)
    up = await runner.run()

    assert down.status is Status.FAIL
    where = f"127.0.0.1:{redis_proxy.port}"
    assert down.output in (
        f"connection closed by server ({where})",
        f"connection reset by server ({where})",
    )
    assert slow.output == "timed out after 300ms"
    assert up.status is Status.PASS
    assert values(up, "email")["waiting"] == 1  # no late reply from the slow run read here


# ---------------------------------------------------------------- config and thresholds


CONFIG = """
checks:
  - name: queues
    type: bullmq
    url: {url}
    queues: [ai-assistant, analytics]
    warn: {{ backlog: 1000, oldest_waiting_age: 5m }}
    fail: {{ oldest_waiting_age: 2h }}
    queue_overrides:
      ai-assistant: {{ warn: {{ backlog: 2, oldest_waiting_age: 1m }} }}
"""


async def test_thresholds_and_queue_overrides_from_yaml(
    bull_url: str, stack: AsyncExitStack, write_config: WriteConfig
) -> None:
    config = load_config(write_config(CONFIG.format(url=bull_url)), environ={})
    ai = await open_queue(stack, bull_url, "ai-assistant")
    analytics = await open_queue(stack, bull_url, "analytics")
    await ai.add("slow", {}, {"timestamp": int(time.time() * 1000) - 3_600_000})
    for queue in (ai, analytics):
        for i in range(3):
            await queue.add("x", {"i": i})

    runner = build_runner(config.checks[0])
    stack.push_async_callback(runner.close)
    result = await runner.run()

    assert result.status is Status.WARN
    assert result.output == "ai-assistant: backlog 4 > 2, oldest_waiting_age 1h > 1m"
    assert observed(result, "analytics")["backlog"].status is Status.PASS


@pytest.mark.parametrize(
    ("fragment", "problem"),
    [
        (
            "queues: [email]\n    queue_overrides: { emial: { warn: { backlog: 5 } } }",
            "checks[0]: queue_overrides.emial: no queue named 'emial' in queues (email)",
        ),
        (
            "queues: [email]\n    queue_overrides: { email: { warn: { bogus: 5 } } }",
            "checks[0].queue_overrides.email.warn: unknown measure 'bogus'",
        ),
        ("queues: ['bull:email']", "queue name 'bull:email' contains ':'"),
        ("queues: []", "checks[0].queues: needs at least 1 item"),
        ("queues: [email, email]", "queue 'email' is listed twice"),
        ("queues: [email]\n    warn: { workerz: '<1' }", "unknown measure 'workerz'"),
    ],
)
def test_config_problems_name_the_key(
    write_config: WriteConfig, fragment: str, problem: str
) -> None:
    head = "checks:\n  - name: queues\n    type: bullmq\n    url: redis://127.0.0.1:6379/0\n"
    path = write_config(f"{head}    {fragment}\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert any(p.startswith(f"{path}: ") and problem in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_target_hides_the_password() -> None:
    config = bullmq_config("redis://:hunter22@cache:6379/0", ["email"], prefix="{bull}")

    assert config.target() == "redis://:***@cache:6379/0 prefix {bull}"
    assert "hunter22" in config.secrets()


def test_url_must_be_a_redis_url_with_a_port_that_is_a_number(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        "checks:\n"
        "  - { name: a, type: bullmq, url: 'redis://:hunter22@h:abc/0', queues: [email] }\n"
        "  - { name: b, type: bullmq, url: 'http://h:6379/0', queues: [email] }\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.problems == [
        f"{path}: checks[0].url: port must be a number from 1 to 65535, got 'abc'",
        f"{path}: checks[1].url: expected a URL like redis://:password@host:6379/0, "
        "got 'http://h:6379/0'",
    ]


@pytest.fixture
def acl_user_without_script_load(redis_server: tuple[str, int]) -> Iterator[tuple[str, str]]:
    with acl_user(
        redis_server, "noload", "s3cret-pw3", "-script|load", flush_scripts=True
    ) as found:
        yield found


async def test_a_refused_script_load_makes_outcomes_unknown_and_counts_go_on(
    redis_server: tuple[str, int],
    bull_url: str,
    stack: AsyncExitStack,
    acl_user_without_script_load: tuple[str, str],
) -> None:
    url, _ = acl_user_without_script_load
    queue = await open_queue(stack, bull_url, "email")
    await queue.add("x", {})

    result = await run_check(stack, bullmq_config(url, ["email", "billing"]))

    for name in ("email", "billing"):
        ratio = observed(result, name)["failure_ratio"]
        assert ratio.value is None
        assert ratio.note.startswith("Redis refused the events read (SCRIPT LOAD): ")
    assert values(result, "email")["waiting"] == 1
    assert result.status is Status.PASS  # no limit on the outcome measures here
