"""Job outcomes (docs/checks/bullmq.md) from queues the real BullMQ for Node runs: failures,
retries, UnrecoverableError, removeOnComplete/removeOnFail, stalls, schedulers, trimming.

Each test lets the check start its window first (a fresh window counts nothing that
happened before), then has Node do things, then compares what the check says with what
the test did or what BullMQ itself reports.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from probe.core.model import CheckResult, Observation, Status
from tests.bullmq_fixtures import DB, SCHEDULER, bullmq_config, check_runner
from tests.faultproxy import FaultProxy
from tests.node_bullmq import run_node, start_node

WINDOW_MINUTES = 5  # the default window


def observed(result: CheckResult, component: str) -> dict[str, Observation]:
    return {o.measure: o for o in result.observations if o.component == component}


def values(result: CheckResult, component: str) -> dict[str, float | None]:
    return {m: o.value for m, o in observed(result, component).items()}


# Five kinds of job on one queue, with BullMQ's own counts printed at the end.
OUTCOMES_SCRIPT = r"""
const { Queue, Worker, UnrecoverableError } = require("bullmq");
const IORedis = require("ioredis");
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
const remove = process.env.REMOVE === "1";
(async () => {
  const q = new Queue("whatsapp", { connection,
    defaultJobOptions: { removeOnComplete: remove, removeOnFail: remove } });
  const jobs = [];
  const backoff = { type: "fixed", delay: 50 };
  for (let i = 0; i < 5; i++) jobs.push({ name: "ok", data: {} });
  for (let i = 0; i < 3; i++) jobs.push({ name: "declined", data: {} });
  jobs.push({ name: "slow", data: {} });
  for (let i = 0; i < 2; i++)
    jobs.push({ name: "flaky", data: {}, opts: { attempts: 3, backoff } });
  for (let i = 0; i < 2; i++)
    jobs.push({ name: "broken", data: {}, opts: { attempts: 2, backoff } });
  jobs.push({ name: "fatal", data: {}, opts: { attempts: 5 } });
  await q.addBulk(jobs);
  let attemptsFailed = 0;
  const w = new Worker("whatsapp", async (job) => {
    if (job.name === "ok") return "fine";
    if (job.name === "declined") throw new Error("card declined");
    if (job.name === "slow") throw new Error("timed out");
    if (job.name === "flaky" && job.attemptsMade === 0) throw new Error("flaky once");
    if (job.name === "flaky") return "ok later";
    if (job.name === "broken") throw new Error("still broken");
    if (job.name === "fatal") throw new UnrecoverableError("do not retry");
  }, { connection });
  w.on("failed", () => { attemptsFailed += 1; });
  let done = 0;
  w.on("completed", () => { done += 1; });
  const finalFailures = () => q.getJobCounts("failed");
  const deadline = Date.now() + 15000;
  // Finished = completed + final failures; with remove on, count via events instead.
  const events = async () => {
    const entries = await connection.xrange("bull:whatsapp:events", "-", "+");
    let c = 0, f = 0;
    for (const [, fields] of entries) {
      if (fields[1] === "completed") c++;
      if (fields[1] === "failed") f++;
    }
    return [c, f];
  };
  while (Date.now() < deadline) {
    const [c, f] = await events();
    if (c + f >= 14) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await w.close();
  const counts = await q.getJobCounts("completed", "failed");
  const [c, f] = await events();
  console.log(JSON.stringify({ counts, attemptsFailed, streamCompleted: c, streamFailed: f }));
  await q.close();
  await connection.quit();
})();
"""


@pytest.mark.parametrize("remove", [False, True], ids=["kept", "removed"])
async def test_failures_retries_and_unrecoverable_are_final_outcomes(
    outcome_url: str,
    remove: bool,
) -> None:
    config = bullmq_config(
        outcome_url, ["whatsapp"], warn={"failure_ratio": "10%"}, fail={"failure_ratio": "25%"}
    )
    async with check_runner(config) as runner:
        first = await runner.run()
        node = await asyncio.to_thread(
            run_node, OUTCOMES_SCRIPT, outcome_url, 30, {"REMOVE": "1" if remove else "0"}
        )
        result = await runner.run()

    assert values(first, "whatsapp")["failed_rate"] == 0  # fresh window
    # 5 ok + 2 flaky that succeed on their 2nd attempt; 3 declined + 1 timed out + 2 broken
    # (both attempts) + 1 UnrecoverableError. Retried attempts are not failures.
    assert (node["streamCompleted"], node["streamFailed"]) == (7, 7)
    assert node["attemptsFailed"] == 7 + 2 + 2  # BullMQ's per-attempt events: 2 flaky, 2 broken
    if remove:
        assert node["counts"] == {"completed": 0, "failed": 0}
    else:
        assert node["counts"] == {"completed": 7, "failed": 7}
    got = observed(result, "whatsapp")
    assert got["failed_rate"].value == pytest.approx(7 / WINDOW_MINUTES)
    assert got["completed_rate"].value == pytest.approx(7 / WINDOW_MINUTES)
    assert got["failure_ratio"].value == pytest.approx(0.5)
    assert got["failed_total"].value == 7 and got["completed_total"].value == 7
    reasons = '"card declined" x3, "still broken" x2, "do not retry" x1'
    assert got["failure_ratio"].note == f"7 of 14 in 5m; {reasons}"
    assert result.status is Status.FAIL
    assert result.output == f"whatsapp failure_ratio 50% > 25% (7 of 14 in 5m; {reasons})"


async def test_failure_ratio_has_no_verdict_below_min_jobs(outcome_url: str) -> None:
    config = bullmq_config(outcome_url, ["whatsapp"], fail={"failure_ratio": "25%"}, min_jobs=20)
    async with check_runner(config) as runner:
        await runner.run()
        await asyncio.to_thread(run_node, OUTCOMES_SCRIPT, outcome_url, 30)
        result = await runner.run()

    ratio = observed(result, "whatsapp")["failure_ratio"]
    assert ratio.value is None
    assert ratio.note == "14 finished in 5m, fewer than min_jobs 20"
    assert result.status is Status.PASS


async def test_a_new_check_object_starts_a_fresh_window(outcome_url: str) -> None:
    """A restart neither replays old failures nor counts any twice."""
    config = bullmq_config(outcome_url, ["whatsapp"])
    async with check_runner(config) as before:
        await before.run()
        await asyncio.to_thread(run_node, OUTCOMES_SCRIPT, outcome_url, 30)
        seen_before = await before.run()
    async with check_runner(config) as after:
        restarted = await after.run()
        again = await after.run()

    assert values(seen_before, "whatsapp")["failed_total"] == 7
    for result in (restarted, again):
        got = values(result, "whatsapp")
        assert (got["failed_rate"], got["failed_total"], got["completed_total"]) == (0, 0, 0)


# ---------------------------------------------------------------- stalls

STALLING_WORKER = r"""
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
(async () => {
  const q = new Queue("receipt-ocr", { connection });
  await q.add("scan", {});
  new Worker("receipt-ocr", async () => {
    console.log("active");
    await new Promise(() => {});  // never finishes: the process is killed mid-job
  }, { connection, lockDuration: 1500, stalledInterval: 500 });
})();
"""

RESCUER = r"""
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
(async () => {
  const q = new Queue("receipt-ocr", { connection });
  let stalled = 0, completed = 0;
  const w = new Worker("receipt-ocr", async () => "read", { connection, stalledInterval: 500 });
  w.on("stalled", () => { stalled += 1; });
  w.on("completed", () => { completed += 1; });
  const deadline = Date.now() + 15000;
  while (completed < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await w.close();
  console.log(JSON.stringify({ stalled, completed }));
  await q.close();
  await connection.quit();
})();
"""


async def test_a_worker_killed_mid_job_is_one_stall(outcome_url: str) -> None:
    config = bullmq_config(outcome_url, ["receipt-ocr"], warn={"stalled_rate": 0})
    async with check_runner(config) as runner:
        await runner.run()
        victim = start_node(STALLING_WORKER, outcome_url)
        try:
            assert victim.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(victim.stdout.readline), 15)
            assert line.strip() == "active"
            victim.send_signal(signal.SIGKILL)
        finally:
            victim.wait(5)
            for pipe in (victim.stdout, victim.stderr):
                if pipe is not None:
                    pipe.close()
        rescued = await asyncio.to_thread(run_node, RESCUER, outcome_url, 25)
        result = await runner.run()

    assert rescued == {"stalled": 1, "completed": 1}  # what BullMQ's own worker saw
    got = values(result, "receipt-ocr")
    assert got["stalled_rate"] == pytest.approx(1 / WINDOW_MINUTES)
    assert (got["stalled_total"], got["completed_total"], got["failed_total"]) == (1, 1, 0)
    assert result.status is Status.WARN
    assert result.output == "receipt-ocr stalled_rate 0.20 > 0"


# ---------------------------------------------------------------- trimming

TRIMMED = r"""
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
(async () => {
  const q = new Queue("analytics", { connection, streams: { events: { maxLen: 20 } } });
  await q.addBulk(Array.from({ length: 300 }, () => ({ name: "count", data: {} })));
  let done = 0;
  const w = new Worker("analytics", async () => 1, { connection, concurrency: 20 });
  w.on("completed", () => { done += 1; });
  const deadline = Date.now() + 15000;
  while (done < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await w.close();
  console.log(JSON.stringify({ done }));
  await q.close();
  await connection.quit();
})();
"""


async def xinfo(url: str, key: str) -> dict[str, Any]:
    client = aioredis.from_url(url, decode_responses=True)
    try:
        info: dict[str, Any] = await client.xinfo_stream(key)
        return info
    finally:
        await client.aclose()


async def test_a_trimmed_stream_reports_events_lost(outcome_url: str) -> None:
    config = bullmq_config(outcome_url, ["analytics"], warn={"events_lost": 0})
    # The stream exists before the window starts, so the count of what was added since is known.
    await asyncio.to_thread(
        run_node,
        TRIMMED.replace("length: 300", "length: 1").replace("done < 300", "done < 1"),
        outcome_url,
        20,
    )
    async with check_runner(config) as runner:
        await runner.run()
        start = await xinfo(outcome_url, "bull:analytics:events")
        assert (await asyncio.to_thread(run_node, TRIMMED, outcome_url, 25)) == {"done": 300}
        end = await xinfo(outcome_url, "bull:analytics:events")
        result = await runner.run()

    added = end["entries-added"] - start["entries-added"]
    got = observed(result, "analytics")
    assert got["events_lost"].value == added - end["length"]  # all that is left was read
    assert got["events_lost_total"].value == got["events_lost"].value
    assert 0 < got["completed_total"].value < 300  # type: ignore[operator]
    assert got["completed_rate"].note.endswith("events lost: counts are lower bounds")
    assert result.status is Status.WARN
    assert result.output.startswith(f"analytics events_lost {added - end['length']:,} > 0")


# ---------------------------------------------------------------- schedulers


async def test_a_scheduler_whose_worker_stopped_is_late_then_fails_expectations(
    outcome_url: str,
) -> None:
    node = await asyncio.to_thread(run_node, SCHEDULER, outcome_url, 20)
    stopped_at = time.time()
    config = bullmq_config(
        outcome_url,
        ["billing"],
        schedule_grace="1s",
        warn={"schedulers_late": 0},
        expect_schedulers=[
            {"queue": "billing", "id": "usage-aggregation", "max_age": "3s"},
            {"queue": "billing", "id": "nightly-invoices", "max_age": "25h"},
        ],
    )
    component = "billing scheduler usage-aggregation"
    async with check_runner(config) as runner:
        early = await runner.run()
        await asyncio.sleep(max(0.0, stopped_at + 3.5 - time.time()))
        late = await runner.run()

    assert node["completed"] == 2
    # The fresh window found the last completed run in the stream: a second or so ago.
    early_age = values(early, component)["last_success_age"]
    assert early_age is not None and early_age < 2
    assert values(early, "billing")["schedulers_late"] == 0
    assert values(early, component)["next_run_timestamp"] == pytest.approx(node["next"] / 1000)
    assert early.output == "billing scheduler nightly-invoices: no such job scheduler"

    got = observed(late, "billing")
    assert got["schedulers_late"].value == 1
    assert got["schedulers_late"].note == "usage-aggregation"
    assert got["delayed_overdue"].value == 1  # its pending iteration, not promoted
    age = observed(late, component)["last_success_age"]
    assert age.value is not None and age.value > 3
    assert age.status is Status.FAIL
    assert late.status is Status.FAIL
    assert late.output.startswith("billing scheduler nightly-invoices: no such job scheduler; ")
    assert f"{component} last_success_age " in late.output
    assert "> 3s" in late.output
    assert "billing schedulers_late 1 > 0 (usage-aggregation)" in late.output


# ---------------------------------------------------------------- large return values

BIG_RESULTS = r"""
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
const n = Number(process.env.JOBS);
(async () => {
  const q = new Queue("ai-assistant", { connection });
  await q.addBulk(Array.from({ length: n }, () => ({ name: "answer", data: {} })));
  let done = 0;
  const big = async () => "x".repeat(100000);
  const w = new Worker("ai-assistant", big, { connection, concurrency: 10 });
  w.on("completed", () => { done += 1; });
  const deadline = Date.now() + 15000;
  while (done < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await w.close();
  console.log(JSON.stringify({ done }));
  await q.close();
  await connection.quit();
})();
"""

BYTES_PER_RUN = 16 * 1024  # counts, the script's small reply and CLIENT LIST


async def test_large_return_values_are_never_read_and_rates_stay_right(
    outcome_url: str,
    counting_proxy: FaultProxy,
) -> None:
    url = f"redis://127.0.0.1:{counting_proxy.port}/{DB}"
    config = bullmq_config(url, ["ai-assistant"])
    read_per_run: list[int] = []
    rates: list[float | None] = []
    async with check_runner(config) as runner:
        await runner.run()
        for _ in range(3):
            done = await asyncio.to_thread(run_node, BIG_RESULTS, outcome_url, 25, {"JOBS": "20"})
            assert done == {"done": 20}
            before = counting_proxy.from_server
            result = await runner.run()
            read_per_run.append(counting_proxy.from_server - before)
            rates.append(values(result, "ai-assistant")["completed_rate"])
    stream = await xinfo(outcome_url, "bull:ai-assistant:events")

    assert stream["length"] >= 60 * 4  # each run had 20 x 100 KB entries to get past
    assert all(size < BYTES_PER_RUN for size in read_per_run), read_per_run
    assert rates == [pytest.approx(n / WINDOW_MINUTES) for n in (20, 40, 60)]


FINISHED_SCHEDULE = r"""
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
(async () => {
  const q = new Queue("email", { connection });
  await q.upsertJobScheduler("trial-reminder", { every: 300, limit: 2 }, { name: "remind" });
  let completed = 0;
  const w = new Worker("email", async () => "sent", { connection });
  w.on("completed", () => { completed += 1; });
  const deadline = Date.now() + 10000;
  while (completed < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  await w.close();
  const score = await connection.zscore("bull:email:repeat", "trial-reminder");
  console.log(JSON.stringify({ completed, score: Number(score) }));
  await q.close();
  await connection.quit();
})();
"""


async def test_a_schedule_that_reached_its_limit_is_finished_not_late(
    outcome_url: str,
) -> None:
    node = await asyncio.to_thread(run_node, FINISHED_SCHEDULE, outcome_url, 20)
    await asyncio.sleep(max(0.0, node["score"] / 1000 + 0.6 - time.time()))
    config = bullmq_config(
        outcome_url, ["email"], schedule_grace="500ms", warn={"schedulers_late": 0}
    )
    async with check_runner(config) as runner:
        result = await runner.run()

    assert node["completed"] == 2
    assert node["score"] / 1000 < time.time() - 0.5  # its last score stays in the past
    assert values(result, "email")["schedulers_late"] == 0
    assert result.status is Status.PASS
