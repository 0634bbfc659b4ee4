"""deploy/grafana/probe.json: a Grafana dashboard whose every query returns data.

A real Prometheus (the Debian package) scrapes a real agent every second. The agent checks
PostgreSQL, a throw-away Redis (with maxmemory, so its memory ratio has a value; it also
holds the lease of the agent's one-replica fleet), BullMQ queues that real Python BullMQ
workers and a job scheduler keep busy, its own /live over HTTP, the container, and a
closed port, whose failure fires an alert to a Slack stand-in.
Each panel's PromQL, with the template variables filled in as Grafana fills them, goes
through Prometheus's HTTP API and must return series with values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from bullmq import Queue, Worker

from probe.agent import Agent
from probe.contract.config import load_config
from tests.cli_helpers import REPO
from tests.conftest import free_port, wait_for_port
from tests.slack_receiver import SlackReceiver

DASHBOARD = REPO / "deploy" / "grafana" / "probe.json"
PROMETHEUS = "/usr/bin/prometheus"
# What Grafana puts in for its built-in interval variables, at a 1 s scrape interval.
BUILT_INS = {"$__rate_interval": "10s", "$__interval": "2s", "$__range": "30s"}
ROWS = ["Fleet", "Checks", "Queues", "Resources"]
AGENT_PORT = free_port()


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


# ---------------------------------------------------------------- the JSON as Grafana reads it


def test_the_dashboard_is_a_grafana_dashboard_with_no_fixed_uid() -> None:
    dashboard = load()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"] == "probe"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ROWS
    found = variables(dashboard)
    assert found["datasource"]["type"] == "datasource"
    assert found["datasource"]["query"] == "prometheus"
    assert {"agent", "check"} <= found.keys()
    # Every query uses the data source the user picks: no UID of someone's Grafana.
    uids = re.findall(r'"uid":\s*("[^"]*"|null)', DASHBOARD.read_text())
    assert set(uids) <= {'"${datasource}"', '"-- Grafana --"', "null"}, set(uids)
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert 'instance=~"$agent"' in target["expr"], panel["title"]
        # Panels sit inside the 24-column grid.
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    [annotation] = [a for a in dashboard["annotations"]["list"] if a.get("expr")]
    assert "probe_alerts_firing" in annotation["expr"]


def test_docs_describe_every_panel_with_the_query_it_runs() -> None:
    docs = (REPO / "docs" / "metrics.md").read_text()
    dashboard = load()
    for panel in panels(dashboard):
        assert f"- **{panel['title']}**" in docs, panel["title"]
        assert panel["description"] in docs, panel["title"]
        for target in panel["targets"]:
            assert f"  {target['expr']}\n" in docs, target["expr"]
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            assert f"`{variable['name']}`: `{variable['query']['query']}`" in docs


# ---------------------------------------------------------------- every query has data


def grafana_fill(expr: str, values: dict[str, str]) -> str:
    """Template variables as Grafana puts them into a Prometheus query; `values` holds them
    already formatted (see `chosen`)."""
    for name, value in values.items():
        expr = expr.replace(f"${name}", value)
    for name, value in BUILT_INS.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own, with maxmemory set (so the memory ratio has a value)."""
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    settings = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
    settings |= {"dir": str(tmp_path), "maxmemory": "64mb", "maxmemory-policy": "noeviction"}
    proc = subprocess.Popen(
        [binary, *(part for key, value in settings.items() for part in (f"--{key}", value))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.asynccontextmanager
async def busy_queues(url: str) -> AsyncIterator[None]:
    """email: a worker that fails every third job; billing: a scheduler every second and
    a worker; reports: jobs and no worker, so a backlog that ages."""
    connection = {"connection": url}
    email, billing, reports = (Queue(n, connection) for n in ("email", "billing", "reports"))
    done = 0

    async def send(job: Any, token: str) -> str:
        nonlocal done
        done += 1
        if done % 3 == 0:
            raise RuntimeError("mailbox full")
        return "sent"

    async def bill(job: Any, token: str) -> str:
        return "billed"

    await billing.upsertJobScheduler("nightly-usage", {"every": 1000}, "aggregate")
    workers = [Worker("email", send, connection), Worker("billing", bill, connection)]

    async def feed() -> None:
        for i in range(1000):
            await email.add("welcome", {"i": i})
            if i % 3 == 0:
                await reports.add("monthly", {"i": i})
            await asyncio.sleep(0.3)

    feeder = asyncio.create_task(feed())
    try:
        yield
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        for worker in workers:
            await worker.close()
        for queue in (email, billing, reports):
            await queue.close()


AGENT = """
agent:
  name: dashboard
  listen: "127.0.0.1:{port}"
  state_file: "{state}"
  history: "off"
  fleet: {{ name: "{fleet}", backend: "{redis}", lease: 3s }}  # one replica: it leads
defaults: {{ interval: 1s, timeout: 900ms }}
checks:
  - {{ name: database, type: postgres, dsn: "{pg}", critical: true }}
  - {{ name: cache, type: redis, url: "{redis}", critical: true }}
  - name: queues
    type: bullmq
    url: "{redis}"
    queues: [email, billing, reports]
    min_jobs: 1
    expect_schedulers: [{{ queue: billing, id: nightly-usage, max_age: 1h }}]
  - {{ name: self, type: http, url: "http://127.0.0.1:{port}/live" }}
  - {{ name: system, type: system }}
  - {{ name: partner, type: tcp, host: 127.0.0.1, port: {closed}, critical: true }}
alerts:
  for: {{ warn: 1h, fail: 8s }}  # fires after Prometheus has seen it at 0
  group_wait: 200ms
  notifiers: [{{ type: slack, webhook_url: "{hook}" }}]
"""


async def query(http: aiohttp.ClientSession, prom: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{prom}/api/v1/query"
    async with http.get(url, params={"query": expr}) as resp:
        body = await resp.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def label_values(http: aiohttp.ClientSession, prom: int, expr: str) -> list[str]:
    """Grafana's `label_values(selector, label)` through the same API it uses."""
    match = re.fullmatch(r"label_values\((.*), (\w+)\)", expr)
    assert match, expr
    selector, label = match.groups()
    url = f"http://127.0.0.1:{prom}/api/v1/label/{label}/values"
    async with http.get(url, params={"match[]": selector}) as resp:
        body = await resp.json()
    values: list[str] = body["data"]
    return values


def with_values(result: list[dict[str, Any]]) -> int:
    return sum(1 for series in result if not math.isnan(float(series["value"][1])))


@pytest.mark.timeout(90)
@pytest.mark.slow
async def test_every_panel_query_returns_data_from_a_real_prometheus(
    tmp_path: Path, pg_dsn: str, throwaway_redis: str, receiver: SlackReceiver
) -> None:
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus is not installed (scripts/test-services.sh installs it)")
    dashboard = load()
    port = AGENT_PORT
    config = tmp_path / "probe.yaml"
    config.write_text(
        AGENT.format(
            port=port,
            state=tmp_path / "state.json",
            pg=pg_dsn,
            redis=throwaway_redis,
            closed=free_port(),
            hook=receiver.webhook_url,
            fleet=f"dashboard-{uuid.uuid4().hex[:8]}",
        )
    )
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        "global: { scrape_interval: 1s, scrape_timeout: 1s }\n"
        "scrape_configs:\n"
        f"  - {{ job_name: probe, static_configs: [{{ targets: ['127.0.0.1:{port}'] }}] }}\n"
    )
    prom = free_port()
    found: dict[str, tuple[int, int]] = {}
    async with busy_queues(throwaway_redis):
        agent = Agent(load_config(config), config)
        await agent.start()
        log = (tmp_path / "prometheus.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom}",
            stdout=log,
            stderr=log,
        )
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                found = await every_panel(http, prom, dashboard, deadline=time.monotonic() + 50)
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            log.close()
            await agent.stop()

    for title, (series, valued) in found.items():
        print(f"{title}: {series} series, {valued} with a value")  # the closing note lists them
    empty = [title for title, (series, valued) in found.items() if not valued]
    tail = (tmp_path / "prometheus.log").read_text()[-1500:]
    assert not empty, (empty, tail)
    assert len(found) == len(panels(dashboard)) + 1  # and the annotation


async def every_panel(
    http: aiohttp.ClientSession, prom: int, dashboard: dict[str, Any], deadline: float
) -> dict[str, tuple[int, int]]:
    """Polls until every panel's queries (and the annotation's) return series with values:
    rates need a few scrapes, an alert needs its `for`. Returns title -> (series, valued)."""
    values: dict[str, str] = {}
    found: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        await asyncio.sleep(2)
        try:
            values = await variable_values(http, prom, dashboard)
        except (aiohttp.ClientError, KeyError, AssertionError):
            continue  # Prometheus is still starting, or has not scraped yet
        found = {}
        for panel in panels(dashboard):
            series = valued = 0
            for target in panel["targets"]:
                result = await query(http, prom, grafana_fill(target["expr"], values))
                series += len(result)
                valued += with_values(result)
            found[panel["title"]] = (series, valued)
        [annotation] = [a for a in dashboard["annotations"]["list"] if a.get("expr")]
        result = await query(http, prom, grafana_fill(annotation["expr"], values))
        found["annotation: " + annotation["name"]] = (len(result), with_values(result))
        if all(valued for _, valued in found.values()):
            break
    return found


async def variable_values(
    http: aiohttp.ClientSession, prom: int, dashboard: dict[str, Any]
) -> dict[str, str]:
    """One value of each query variable, chosen as a user would: the agent, then a check
    and a queue of that agent. The queries must list what the agent has."""
    values: dict[str, str] = {}
    expected = {"agent": f"127.0.0.1:{AGENT_PORT}", "check": "queues", "queue": "email"}
    for name, variable in variables(dashboard).items():
        if variable["type"] != "query":
            continue
        listed = await label_values(http, prom, grafana_fill(variable["query"]["query"], values))
        assert expected[name] in listed, (name, listed)
        values[name] = chosen(variable, listed)
    return values


def chosen(variable: dict[str, Any], listed: list[str]) -> str:
    """What a user sees first: one agent picked (Grafana regex-escapes a single value,
    inside a PromQL string), and All checks and queues (the variable's allValue)."""
    if variable["name"] == "agent":
        [value] = listed
        return re.escape(value).replace("\\", "\\\\")
    return str(variable["allValue"])
