"""Alerts describe the current cause: per-measure keys, cause changes, a check that cannot run.

The end-to-end test runs the app's real workers (Node BullMQ 6) against a private Redis and
the real agent, and reads what reached the Slack stand-in, in order.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from probe.agent import Agent
from probe.contract.config import load_config
from probe.contract.notification import Kind, Notification, Severity, plain_text
from probe.core.model import Status
from tests.alert_helpers import REFUSED, T0, backlog, engine_for, feed, obs, result
from tests.app_workers import QUEUES, Workers
from tests.node_bullmq import run_node
from tests.slack_receiver import SlackReceiver


def queue_run(workers: dict[str, int], backlogs: dict[str, int] | None = None) -> Any:
    """A bullmq-like result: every queue reports workers and backlog (limit 50)."""
    backlogs = backlogs or {}
    found = []
    for queue in QUEUES:
        count = workers.get(queue, 1)
        found.append(obs(queue, "workers", count, Status.FAIL if count < 1 else Status.PASS, "< 1"))
        size = backlogs.get(queue, 0)
        found.append(obs(queue, "backlog", size, Status.WARN if size > 50 else Status.PASS, "> 50"))
    status = max((o.status for o in found), key=lambda s: s.rank)
    return result(status, *found)


# ---------------------------------------------------------------- engine, fake clock


def test_a_cause_that_ends_resolves_and_the_new_cause_takes_over_in_the_same_message() -> None:
    engine = engine_for(**{"for": {"warn": "10m", "fail": "1m"}})
    dead = queue_run(dict.fromkeys(QUEUES, 0), {"ai-assistant": 400})
    fired = feed(engine, "queues", [dead] * 5, T0)
    assert sorted(a.component for _, a in fired) == sorted(QUEUES)
    assert {(a.measure, a.severity) for _, a in fired} == {("workers", Severity.CRITICAL)}

    back = queue_run({}, {"ai-assistant": 400})
    due = [a for _, a in feed(engine, "queues", [back] * 2, T0 + 75)]
    resolved = [a for a in due if a.kind is Kind.RESOLVED]
    assert sorted(a.component for a in resolved) == sorted(QUEUES)
    [changed] = [a for a in due if a.kind is Kind.FIRING]
    assert (changed.key, changed.measure, changed.severity) == (
        "queues/ai-assistant",
        "backlog",
        Severity.WARNING,
    )
    assert changed.summary == "ai-assistant backlog 400 > 50"
    assert changed.previous_summary == "ai-assistant workers 0 < 1"

    text = plain_text(Notification("botflow-probe", T0 + 90, tuple(due))).splitlines()
    assert text[0] == "[botflow-probe: 1 warning, 6 resolved, 1 cause changed]"
    assert text[1].startswith(
        "WARNING queues/ai-assistant: ai-assistant backlog 400 > 50 "
        "(cause changed, was: ai-assistant workers 0 < 1, now ended;"
    )
    assert not any(line.startswith("RESOLVED queues/ai-assistant") for line in text)
    assert len(text) == 1 + 7

    drained = [a for _, a in feed(engine, "queues", [queue_run({})] * 2, T0 + 105)]
    assert [(a.kind, a.key, a.measure) for a in drained] == [
        (Kind.RESOLVED, "queues/ai-assistant", "backlog")
    ]
    assert engine.states == {}


def test_a_new_cause_while_another_fires_is_its_own_alert_after_its_for() -> None:
    engine = engine_for(**{"for": {"warn": "2m", "fail": "1m"}})
    feed(engine, "queues", [queue_run({"email": 0})] * 5, T0)  # workers fire at T0+60
    both = queue_run({"email": 0}, {"email": 500})
    due = feed(engine, "queues", [both] * 10, T0 + 75)
    assert [(t - T0, a.kind, a.measure) for t, a in due] == [(75 + 120, Kind.FIRING, "backlog")]
    assert due[0][1].previous_summary == ""


def test_a_check_that_cannot_run_keeps_its_measure_alerts_and_the_up_alert_says_why() -> None:
    engine = engine_for()
    feed(engine, "queues", [queue_run({"email": 0})] * 5, T0)  # email workers firing
    refused = [a for _, a in feed(engine, "queues", [REFUSED] * 10, T0 + 75)]
    # Neither resolved nor fired again: exactly one new alert, on `up`, with the words.
    assert [(a.kind, a.key, a.measure, a.summary) for a in refused] == [
        (Kind.FIRING, "queues", "up", "connection refused (127.0.0.1:5432)")
    ]
    assert engine.states[("queues", "email", "workers")].notified_severity is Severity.CRITICAL

    # Running again with the workers still gone: `up` resolves, nothing about email is sent.
    again = [a for _, a in feed(engine, "queues", [queue_run({"email": 0})] * 2, T0 + 240)]
    assert [(a.kind, a.measure) for a in again] == [(Kind.RESOLVED, "up")]


def test_a_run_that_cannot_measure_says_nothing_about_response_time() -> None:
    engine = engine_for(**{"for": {"warn": "0s", "fail": "0s"}})
    slow = result(Status.WARN, obs("", "response_time", 2.0, Status.WARN, "> 1s"))
    [(_, fired)] = feed(engine, "app", [slow], T0)
    assert fired.measure == "response_time"
    # A refused connection is quick, but that is no news about the response time.
    due = feed(engine, "app", [REFUSED, REFUSED], T0 + 15)
    assert [(a.kind, a.measure) for _, a in due] == [(Kind.FIRING, "up")]
    assert ("app", "", "response_time") in engine.states


def test_severity_and_changes_read_in_the_first_line() -> None:
    engine = engine_for(**{"for": {"warn": "0s", "fail": "0s"}})
    [(_, warn)] = feed(engine, "queues", [backlog(1240)], T0)
    text = plain_text(Notification("botflow-probe", T0, (warn,)))
    assert text.splitlines()[0] == "[botflow-probe: 1 warning]"


# ---------------------------------------------------------------- end to end, real BullMQ

FLOOD = r"""
const { Queue } = require("bullmq");
const queue = new Queue(process.env.QUEUE, { connection: { url: process.env.REDIS_URL } });
const jobs = Array.from({ length: Number(process.env.COUNT) }, (_, i) => ({
  name: "reply", data: { conversation: i },
}));
queue.addBulk(jobs).then(async () => {
  const counts = await queue.getJobCounts();
  await queue.close();
  console.log(JSON.stringify(counts));
});
"""

DRAIN = r"""
const { Queue } = require("bullmq");
const queue = new Queue(process.env.QUEUE, { connection: { url: process.env.REDIS_URL } });
queue.drain().then(async () => {
  const counts = await queue.getJobCounts();
  await queue.close();
  console.log(JSON.stringify(counts));
});
"""

SCENARIO_CONFIG = """
agent: {{ name: botflow-probe, listen: "127.0.0.1:0" }}
defaults: {{ interval: 1s, timeout: 800ms }}
checks:
  - name: queues
    type: bullmq
    url: "{redis}"
    queues: {queues}
    warn: {{ backlog: 1000 }}
    fail: {{ workers: "<1" }}
    queue_overrides:
      ai-assistant: {{ warn: {{ backlog: 50 }} }}
alerts:
  for: {{ warn: 10m, fail: 2s }}
  resolve_after: 2
  group_wait: 2500ms
  notifiers:
    - {{ type: slack, webhook_url: "{hook}" }}
"""


def lines(body: dict[str, Any]) -> list[str]:
    return str(body["text"]).splitlines()


async def test_workers_die_come_back_and_a_flood_the_slack_messages_tell_it_in_order(
    write_config: Any, redis_url: str, receiver: SlackReceiver, workers: Workers
) -> None:
    path: Path = write_config(
        SCENARIO_CONFIG.format(
            redis=redis_url, queues=json.dumps(QUEUES), hook=receiver.webhook_url
        )
    )
    await workers.start()
    agent = Agent(load_config(path), path)
    await agent.start()
    try:
        await asyncio.sleep(1.5)  # healthy runs first: nothing to say
        assert receiver.received == []

        workers.kill()
        [first] = await receiver.wait_for(1, timeout=15)
        assert lines(first)[0] == "[botflow-probe: 7 critical]"
        assert sorted(lines(first)[1:]) == sorted(
            f"CRITICAL queues/{q}: {q} workers 0 < 1 (since {_since(lines(first), q)})"
            for q in QUEUES
        )

        env = {"QUEUE": "ai-assistant", "COUNT": "400"}
        counts = await asyncio.to_thread(run_node, FLOOD, redis_url, 20.0, env)
        assert counts["waiting"] == 400
        await workers.start(slow="ai-assistant")  # one job at a time, each takes minutes

        second = (await receiver.wait_for(2, timeout=15))[1]
        text = lines(second)
        assert text[0] == "[botflow-probe: 1 warning, 6 resolved, 1 cause changed]"
        assert re.fullmatch(
            r"WARNING queues/ai-assistant: ai-assistant backlog 39\d > 50 "
            r"\(cause changed, was: ai-assistant workers 0 < 1, now ended; since .*\)",
            text[1],
        ), text[1]
        resolved = sorted(t.split(":")[0] for t in text[2:])
        assert resolved == sorted(f"RESOLVED queues/{q}" for q in QUEUES if q != "ai-assistant")
        assert second["attachments"][0]["color"] == "#ECB22E"

        drained = await asyncio.to_thread(
            run_node, DRAIN, redis_url, 20.0, {"QUEUE": "ai-assistant"}
        )
        assert drained["waiting"] == 0
        third = (await receiver.wait_for(3, timeout=15))[2]
        assert lines(third)[0] == "[botflow-probe: 1 resolved]"
        assert re.fullmatch(
            r"RESOLVED queues/ai-assistant: ai-assistant backlog 39\d > 50 \(lasted .*\)",
            lines(third)[1],
        ), lines(third)[1]
        await asyncio.sleep(1.5)
        assert len(receiver.received) == 3
        print("\n\n".join(str(b["text"]) for b in receiver.delivered))  # for the closing note
    finally:
        await agent.stop()


def _since(text: list[str], queue: str) -> str:
    [line] = [t for t in text if t.startswith(f"CRITICAL queues/{queue}:")]
    return line.rsplit("(since ", 1)[1].rstrip(")")
