"""Job outcomes through the whole agent: config, /metrics (promtool) and a Slack alert."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue, Worker
from prometheus_client import generate_latest

from probe.agent import Agent
from probe.checks.bullmq import BullMQConfig
from probe.contract.config import ConfigError, load_config
from probe.core.redact import Redactor
from probe.engine.factory import build_runner
from probe.engine.metrics import build_registry
from probe.engine.store import ResultStore
from tests.alert_helpers import texts
from tests.bullmq_fixtures import bullmq_config
from tests.slack_receiver import SlackReceiver
from tests.support import until

PROMTOOL = "/usr/bin/promtool"

AGENT = """
agent: {{ name: e2e-probe, listen: "127.0.0.1:0", state_file: "{state}" }}
defaults: {{ interval: 1s, timeout: 900ms }}
checks:
  - name: queues
    type: bullmq
    url: "{url}"
    queues: [whatsapp, email]
    min_jobs: 20
    warn: {{ failure_ratio: 10% }}
    fail: {{ failure_ratio: 25% }}
alerts:
  for: {{ warn: 0s, fail: 0s }}
  resolve_after: 1
  group_wait: 200ms
  notifiers:
    - {{ type: slack, webhook_url: "{hook}" }}
"""


async def fail_jobs(url: str, reasons: list[str]) -> None:
    """One job per reason, each failed by a real Python BullMQ worker with that message."""
    queue = Queue("whatsapp", {"connection": url})
    try:
        for i, reason in enumerate(reasons):
            await queue.add("send", {"reason": reason, "i": i})

        async def process(job: Any, token: str) -> None:
            raise RuntimeError(job.data["reason"])

        worker = Worker("whatsapp", process, {"connection": url, "concurrency": 5})
        try:

            async def all_failed() -> bool:
                return bool((await queue.getJobCounts("failed"))["failed"] == len(reasons))

            await until(all_failed, timeout=15)
        finally:
            await worker.close()
    finally:
        await queue.close()


async def test_twenty_failed_whatsapp_jobs_send_one_slack_message(
    write_config: Callable[[str], Path],
    tmp_path: Path,
    outcome_url: str,
    receiver: SlackReceiver,
) -> None:
    path = write_config(
        AGENT.format(state=tmp_path / "state.json", url=outcome_url, hook=receiver.webhook_url)
    )
    agent = Agent(load_config(path), path)
    await agent.start()
    try:
        await until(lambda: agent.store.latest("queues"), timeout=5)  # the window starts
        reasons = ["131047 re-engagement message window closed"] * 12 + ["timed out"] * 8
        await fail_jobs(outcome_url, reasons)
        [message] = await until(lambda: [t for t in texts(receiver) if "whatsapp" in t])
        await asyncio.sleep(2.5)  # more runs and group waits: still one message
    finally:
        await agent.stop()

    print("Slack text:", message)  # the closing note quotes it
    assert len(receiver.delivered) == 1, texts(receiver)
    assert "CRITICAL" in message
    assert (
        "whatsapp failure_ratio 100% > 25% (20 of 20 in 5m; "
        '"131047 re-engagement message window closed" x12, "timed out" x8)'
    ) in message


CONFIG = """
checks:
  - name: queues
    type: bullmq
    url: "{url}"
    queues: [billing, whatsapp]
    expect_schedulers:
      - {{ queue: billing, id: usage-aggregation, max_age: 25h }}
"""


async def test_outcome_series_exist_from_the_first_scrape_and_pass_promtool(
    write_config: Callable[[str], Path],
    outcome_url: str,
) -> None:
    config = load_config(write_config(CONFIG.format(url=outcome_url)), environ={})
    store = ResultStore(config)
    registry = build_registry(store, None)
    before = generate_latest(registry).decode()

    runner = build_runner(config.checks[0])
    try:
        store.record("queues", await runner.run())
        await fail_jobs(outcome_url, ["boom"] * 3)
        store.record("queues", await runner.run())
    finally:
        await runner.close()
    after = generate_latest(registry).decode()

    for queue in ("billing", "whatsapp"):
        for outcome in ("completed", "failed", "stalled"):
            line = f'probe_queue_job_outcomes_total{{outcome="{outcome}",queue="{queue}"}} NaN'
            assert line in before
        assert f'probe_queue_events_lost_total{{queue="{queue}"}} NaN' in before
    labels = 'queue="billing",scheduler="usage-aggregation"'
    assert f"probe_queue_scheduler_next_run_timestamp_seconds{{{labels}}} NaN" in before
    assert f"probe_queue_scheduler_last_success_timestamp_seconds{{{labels}}} NaN" in before
    assert "# TYPE probe_queue_job_outcomes_total counter" in after
    assert "# TYPE probe_queue_jobs gauge" in after
    assert 'probe_queue_job_outcomes_total{outcome="failed",queue="whatsapp"} 3.0' in after
    assert 'probe_queue_job_outcomes_total{outcome="completed",queue="whatsapp"} 0.0' in after
    assert 'probe_queue_jobs{queue="whatsapp",state="failed"} 3.0' in after
    assert 'probe_queue_events_lost_total{queue="whatsapp"} 0.0' in after
    for text in (before, after):
        done = subprocess.run(
            [PROMTOOL, "check", "metrics"],
            input=text.encode(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


@pytest.mark.parametrize(
    ("fragment", "problem"),
    [
        (
            "expect_schedulers: [{ queue: biling, id: x, max_age: 25h }]",
            "expect_schedulers[0]: no queue named 'biling' in queues (billing)",
        ),
        (
            "expect_schedulers: [{ queue: billing, id: x, max_age: 1h },"
            " { queue: billing, id: x, max_age: 2h }]",
            "expect_schedulers[1]: scheduler 'x' of queue 'billing' is listed twice",
        ),
        (
            "expect_schedulers: [{ queue: billing, id: x }]",
            "checks[0].expect_schedulers[0].max_age: required key is missing",
        ),
        ("min_jobs: 0", "checks[0].min_jobs: must be at least 1, got 0"),
        ("warn: { failure_rate: 10% }", "unknown measure 'failure_rate'"),
    ],
)
def test_outcome_config_problems_name_the_key(
    write_config: Callable[[str], Path], fragment: str, problem: str
) -> None:
    head = (
        "checks:\n  - name: queues\n    type: bullmq\n    url: redis://127.0.0.1:6379/0\n"
        "    queues: [billing]\n"
    )
    path = write_config(f"{head}    {fragment}\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert any(problem in p for p in caught.value.problems), caught.value.problems


async def test_reasons_are_redacted_cut_and_whole_characters(
    outcome_url: str,
) -> None:
    secret_url = outcome_url.replace("redis://", "redis://:config-secret-77@")
    long_reason = "é" * 300  # 600 bytes: the server-side cut falls inside a character
    leaky = "connect redis://:hunter2@cache:6379 failed; token config-secret-77"
    config = load_config_for(secret_url)
    runner = build_runner(config, Redactor(config.secrets()))
    try:
        await runner.run()
        await fail_jobs(outcome_url, [long_reason] * 2 + [leaky] * 3)
        result = await runner.run()
    finally:
        await runner.close()

    [rate] = [o for o in result.observations if o.measure == "failed_rate"]
    cut = "é" * 119 + "\u2026"
    assert rate.note == (
        f'5 in 5m; "connect redis://:***@cache:6379 failed; token ***" x3, "{cut}" x2'
    )
    assert "hunter2" not in result.output and "config-secret-77" not in result.output
    assert result.output.startswith("whatsapp failed_rate 1 > 0 (5 in 5m; ")


def load_config_for(url: str) -> BullMQConfig:
    return bullmq_config(url, ["whatsapp"], warn={"failed_rate": 0})
