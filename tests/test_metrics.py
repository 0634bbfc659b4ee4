"""/metrics as Prometheus sees it: contract names and labels, promtool, a real server.

Results come from running the real checks once against the private Redis, the test
database on the machine's PostgreSQL, real BullMQ queues and this machine's cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from bullmq import Queue
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from probe.checks.bullmq import JOB_STATES as QUEUE_STATES
from probe.contract.config import Config, load_config
from probe.contract.plugins import metric_families
from probe.engine.factory import build_runner
from probe.engine.metrics import ProbeRegistry, build_registry
from probe.engine.runner import CheckRunner
from probe.engine.store import DURATION_BUCKETS, ResultStore
from tests.conftest import free_port
from tests.support import web_app

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
TOKEN = "metrics-test-token-7f3a"
PG_PASSWORD = "pg-secret-9c1d"  # ignored by trust auth; must never reach /metrics
CHECKS = ["database", "cache", "queues", "system", "partners", "cache_port", "closed_port"]
QUEUES = ["email", "billing"]

# name -> (type, label names); the table of docs/metrics.md.
FROM_LAST_RUN = "Values come from the last scheduled run, not from the scrape."
CONTRACT = {
    "probe_check_up": ("gauge", {"check"}),
    "probe_check_status": ("gauge", {"check", "status"}),
    "probe_check_duration_seconds": ("histogram", {"check"}),
    "probe_check_runs": ("counter", {"check", "status"}),
    "probe_check_last_run_timestamp_seconds": ("gauge", {"check"}),
    "probe_health_status": ("gauge", {"status"}),
    "probe_queue_jobs": ("gauge", {"queue", "state"}),
    "probe_queue_oldest_waiting_age_seconds": ("gauge", {"queue"}),
    "probe_queue_workers": ("gauge", {"queue"}),
    "probe_cpu_usage_ratio": ("gauge", {"scope"}),
    "probe_memory_usage_bytes": ("gauge", {"scope"}),
    "probe_memory_limit_bytes": ("gauge", {"scope"}),
    "probe_memory_usage_ratio": ("gauge", {"scope"}),
    "probe_alerts_firing": ("gauge", {"severity"}),
    "probe_notifications": ("counter", {"notifier", "result"}),
    "probe_build_info": ("gauge", {"version"}),
}


@dataclass
class Scrape:
    """One parsed exposition: {metric family name: [(sample name, labels, value)]}."""

    text: str
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[tuple[str, dict[str, str], float]]] = field(default_factory=dict)

    @classmethod
    def of(cls, registry: CollectorRegistry) -> Scrape:
        text = generate_latest(registry).decode()
        scrape = cls(text)
        for family in text_string_to_metric_families(text):
            scrape.types[family.name] = family.type
            scrape.helps[family.name] = family.documentation
            scrape.samples[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
        return scrape

    def value(self, sample_name: str, **labels: str) -> float:
        family = sample_name
        for suffix in ("_total", "_bucket", "_count", "_sum"):
            family = family.removesuffix(suffix)
        for name, have, value in self.samples.get(family, []):
            if name == sample_name and have == labels:
                return value
        raise AssertionError(f"no sample {sample_name}{labels} in the exposition")

    def label_values(self, family: str, label: str) -> set[str]:
        return {labels[label] for _, labels, _ in self.samples.get(family, []) if label in labels}


@pytest.fixture
def config(
    write_config: Callable[[str], Path], pg_dsn: str, redis_url: str, redis_server: tuple[str, int]
) -> Config:
    parts = urlsplit(pg_dsn)
    dsn_with_password = (
        f"postgresql://postgres:{PG_PASSWORD}@{parts.hostname}:{parts.port}{parts.path}"
    )
    host, port = redis_server
    text = f"""
agent:
  name: metrics-test
  version: 9.9.9-test
  listen: 127.0.0.1:0
  auth_token: {TOKEN}
defaults: {{ interval: 15s, timeout: 5s }}
checks:
  - {{ name: database, type: postgres, dsn: "{dsn_with_password}", critical: true }}
  - {{ name: cache, type: redis, url: "{redis_url}", critical: true }}
  - name: queues
    type: bullmq
    url: "{redis_url}"
    queues: [{", ".join(QUEUES)}]
  - name: system
    type: system
  - name: partners
    type: group
    checks:
      - {{ name: cache_port, type: tcp, host: {host}, port: {port} }}
      - {{ name: closed_port, type: tcp, host: 127.0.0.1, port: {free_port()} }}
"""
    return load_config(write_config(text))


async def run_round(store: ResultStore, config: Config) -> None:
    """One scheduling round: every top-level check once, results into the store."""

    async def run_one(runner: CheckRunner) -> None:
        try:
            store.record(runner.name, await runner.run())
        finally:
            await runner.close()

    await asyncio.gather(*(run_one(build_runner(c)) for c in config.checks))


async def seed_queues(redis_url: str) -> dict[str, dict[str, int]]:
    """Real BullMQ jobs; returns what BullMQ's own getJobCounts() says about them."""
    counts: dict[str, dict[str, int]] = {}
    for name in QUEUES:
        queue = Queue(name, {"connection": redis_url})
        try:
            if name == "email":
                for i in range(3):
                    await queue.add("send", {"i": i})
            else:
                await queue.add("charge", {}, {"delay": 60_000})
                await queue.add("refund", {}, {"priority": 5})
            counts[name] = await queue.getJobCounts(*QUEUE_STATES)
        finally:
            await queue.close()
    return counts


@pytest.fixture
async def scraped(
    config: Config, redis_url: str
) -> AsyncIterator[tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]]]:
    counts = await seed_queues(redis_url)
    store = ResultStore(config)
    registry = build_registry(store, None)
    await run_round(store, config)
    yield store, registry, counts


# ---------------------------------------------------------------- before any result


def test_every_series_of_a_configured_check_exists_before_the_first_run(config: Config) -> None:
    store = ResultStore(config)
    scrape = Scrape.of(build_registry(store, None))

    assert scrape.label_values("probe_check_up", "check") == set(CHECKS)
    for check in CHECKS:
        assert scrape.value("probe_check_up", check=check) == 0
        assert scrape.value("probe_check_status", check=check, status="warn") == 1
        assert scrape.value("probe_check_status", check=check, status="pass") == 0
        assert scrape.value("probe_check_status", check=check, status="fail") == 0
        for status in ("pass", "warn", "fail"):
            assert scrape.value("probe_check_runs_total", check=check, status=status) == 0
        assert scrape.value("probe_check_duration_seconds_count", check=check) == 0
        assert scrape.value("probe_check_duration_seconds_bucket", check=check, le="+Inf") == 0
        assert scrape.value("probe_check_last_run_timestamp_seconds", check=check) == 0
    assert scrape.value("probe_health_status", status="degraded") == 1
    assert scrape.value("probe_alerts_firing", severity="warning") == 0
    assert scrape.value("probe_alerts_firing", severity="critical") == 0
    assert scrape.value("probe_build_info", version="9.9.9-test") == 1
    # Queue and system series exist too, as NaN (unknown) rather than a made-up 0.
    jobs = scrape.samples["probe_queue_jobs"]
    assert {labels["queue"] for _, labels, _ in jobs} == set(QUEUES)
    assert {labels["state"] for _, labels, _ in jobs} == set(QUEUE_STATES)
    assert all(math.isnan(value) for _, _, value in jobs)
    for name in ("probe_queue_oldest_waiting_age_seconds", "probe_queue_workers"):
        assert {labels["queue"] for _, labels, _ in scrape.samples[name]} == set(QUEUES)
    for name in ("probe_cpu_usage_ratio", "probe_memory_usage_ratio"):
        assert {labels["scope"] for _, labels, _ in scrape.samples[name]} == {"container", "host"}
        assert all(math.isnan(value) for _, _, value in scrape.samples[name])


# ---------------------------------------------------------------- after one round


async def test_every_contract_metric_has_its_type_and_labels_after_one_round(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
) -> None:
    store, _, _ = scraped
    stats = FixedAlertStats({"warning": 1}, {("slack", "sent"): 1})
    scrape = Scrape.of(build_registry(store, stats))

    for name, (kind, labels) in CONTRACT.items():
        assert scrape.types.get(name) == kind, name
        assert scrape.samples[name], f"{name} has no series"
        for sample_name, have, _ in scrape.samples[name]:
            extra = {"le"} if sample_name.endswith("_bucket") else set()
            assert set(have) == labels | extra, (sample_name, have)
        help_text = scrape.helps[name]
        said = help_text.count(FROM_LAST_RUN)
        assert said <= 1, help_text  # a fact said once
        if name not in ("probe_build_info", "probe_notifications", "probe_check_runs"):
            assert said == 1 and help_text.endswith(FROM_LAST_RUN), help_text
    assert any(name.startswith("process_") for name in scrape.types)


async def test_every_check_family_help_line_is_its_declared_text_said_once(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
) -> None:
    """Each fact in one place: a check module declares what its family is, /metrics adds
    once where its values come from."""
    store, _, _ = scraped
    text = generate_latest(build_registry(store, FixedAlertStats({}, {}))).decode()
    helps = {line.split()[2]: line for line in text.splitlines() if line.startswith("# HELP ")}

    assert helps["probe_postgres_uptime_seconds"] == (
        "# HELP probe_postgres_uptime_seconds Time since the server started. "
        "Values come from the last scheduled run, not from the scrape."
    )
    assert helps["probe_redis_clients"] == (
        "# HELP probe_redis_clients Connected clients. "
        "Values come from the last scheduled run, not from the scrape."
    )
    families = [
        f for f in metric_families() if f.name.startswith(("probe_postgres_", "probe_redis_"))
    ]
    assert len(families) == 18
    for family in families:
        assert helps[family.name] == f"# HELP {family.name} {family.doc} {FROM_LAST_RUN}"


async def test_check_series_follow_the_results(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
) -> None:
    store, registry, _ = scraped
    scrape = Scrape.of(registry)

    assert scrape.label_values("probe_check_up", "check") == set(CHECKS)
    for check in ("database", "cache", "queues", "cache_port"):
        assert scrape.value("probe_check_up", check=check) == 1, store.latest(check)
        assert scrape.value("probe_check_status", check=check, status="pass") == 1
        assert scrape.value("probe_check_runs_total", check=check, status="pass") == 1
    assert scrape.value("probe_check_up", check="closed_port") == 0
    assert scrape.value("probe_check_status", check="closed_port", status="fail") == 1
    assert scrape.value("probe_check_runs_total", check="closed_port", status="fail") == 1
    assert scrape.value("probe_check_up", check="partners") == 0  # worst member: fail
    assert scrape.value("probe_health_status", status="degraded") == 1  # not critical

    for check in CHECKS:
        latest = store.latest(check)
        assert latest is not None
        assert scrape.value("probe_check_last_run_timestamp_seconds", check=check) == pytest.approx(
            latest.observed_at
        )
        assert scrape.value("probe_check_duration_seconds_count", check=check) == 1
        assert scrape.value("probe_check_duration_seconds_sum", check=check) == pytest.approx(
            latest.response_time
        )
        buckets = [
            scrape.value("probe_check_duration_seconds_bucket", check=check, le=repr(b))
            for b in DURATION_BUCKETS
        ]
        assert buckets == sorted(buckets)  # cumulative
        assert scrape.value("probe_check_duration_seconds_bucket", check=check, le="+Inf") == 1


async def test_queue_series_match_bullmq_get_job_counts(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
) -> None:
    _, registry, counts = scraped
    scrape = Scrape.of(registry)

    assert scrape.label_values("probe_queue_jobs", "queue") == set(QUEUES)
    for queue in QUEUES:
        for state in QUEUE_STATES:
            assert (
                scrape.value("probe_queue_jobs", queue=queue, state=state) == counts[queue][state]
            ), (queue, state)
        assert scrape.value("probe_queue_workers", queue=queue) == 0
    assert counts["email"]["waiting"] == 3
    assert 0 <= scrape.value("probe_queue_oldest_waiting_age_seconds", queue="email") < 60


async def test_system_series_report_cpu_and_memory(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
) -> None:
    _, registry, _ = scraped
    scrape = Scrape.of(registry)

    for name in ("probe_cpu_usage_ratio", "probe_memory_usage_bytes"):
        assert scrape.label_values(name, "scope") <= {"container", "host"}
        assert scrape.label_values(name, "scope"), f"{name} has no series"
    for scope in scrape.label_values("probe_memory_usage_ratio", "scope"):
        used = scrape.value("probe_memory_usage_bytes", scope=scope)
        limit = scrape.value("probe_memory_limit_bytes", scope=scope)
        assert 0 < used <= limit
        assert scrape.value("probe_memory_usage_ratio", scope=scope) == pytest.approx(
            used / limit, rel=0.05
        )


async def test_labels_hold_no_secret_url_or_error_message(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
) -> None:
    store, registry, _ = scraped
    text = Scrape.of(registry).text

    failure = store.latest("closed_port")
    assert failure is not None and failure.output
    for leak in (PG_PASSWORD, TOKEN, "://", failure.output):
        assert leak not in text


async def test_checks_removed_by_a_reload_vanish_from_the_next_scrape(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
    config: Config,
) -> None:
    store, registry, _ = scraped
    kept = [c for c in config.checks if c.name not in ("queues", "partners")]
    store.reconfigure(config.model_copy(update={"checks": kept}))
    scrape = Scrape.of(registry)

    assert scrape.label_values("probe_check_up", "check") == {"database", "cache", "system"}
    assert scrape.label_values("probe_check_runs", "check") == {"database", "cache", "system"}
    assert scrape.samples["probe_queue_jobs"] == []
    assert scrape.value("probe_check_runs_total", check="database", status="pass") == 1


@dataclass
class FixedAlertStats:
    """The AlertStats protocol with set values (the alert engine is tested on its own)."""

    firing_now: dict[str, int]
    notifications: dict[tuple[str, str], int]

    def firing(self) -> dict[str, int]:
        return self.firing_now

    def notification_counts(self) -> dict[tuple[str, str], int]:
        return self.notifications


def test_alert_series_come_from_the_alert_engine(config: Config) -> None:
    stats = FixedAlertStats({"critical": 2}, {("slack", "sent"): 5, ("slack", "failed"): 1})
    scrape = Scrape.of(build_registry(ResultStore(config), stats))

    assert scrape.value("probe_alerts_firing", severity="critical") == 2
    assert scrape.value("probe_alerts_firing", severity="warning") == 0
    assert scrape.value("probe_notifications_total", notifier="slack", result="sent") == 5
    assert scrape.value("probe_notifications_total", notifier="slack", result="failed") == 1
    assert scrape.value("probe_notifications_total", notifier="slack", result="dropped") == 0


# ---------------------------------------------------------------- real Prometheus tooling


async def test_promtool_finds_no_problem(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
) -> None:
    _, registry, _ = scraped
    proc = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


@contextlib.asynccontextmanager
async def serve(store: ResultStore, registry: CollectorRegistry) -> AsyncIterator[int]:
    """The agent's own routes (probe.web.routes) on a free port; yields the port."""
    runner = web.AppRunner(web_app(store, registry), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def test_metrics_need_the_bearer_token_when_one_is_set(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
) -> None:
    store, registry, _ = scraped
    async with serve(store, registry) as port, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}/metrics"
        async with http.get(url) as anonymous:
            assert anonymous.status == 401
        async with http.get(url, headers={"Authorization": "Bearer wrong"}) as wrong:
            assert wrong.status == 401
        async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as allowed:
            assert allowed.status == 200
            assert "probe_check_up" in await allowed.text()


def prometheus_config(target_port: int) -> str:
    return f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: probe
    authorization:
      type: Bearer
      credentials: {TOKEN}
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
"""


async def query_checks(http: aiohttp.ClientSession, prom_port: int) -> set[str]:
    url = f"http://127.0.0.1:{prom_port}/api/v1/query"
    try:
        async with http.get(url, params={"query": "probe_check_up"}) as resp:
            body = await resp.json()
    except aiohttp.ClientError:
        return set()  # still starting
    return {series["metric"]["check"] for series in body["data"]["result"]}


async def test_a_real_prometheus_scrapes_every_check(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
    tmp_path: Path,
) -> None:
    store, registry, _ = scraped
    async with serve(store, registry) as target_port:
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(prometheus_config(target_port))
        prom_port = free_port()
        log_file = (tmp_path / "prometheus.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            stdout=log_file,
            stderr=log_file,
        )
        found: set[str] = set()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
                for _ in range(80):  # up to 20 s
                    found = await query_checks(http, prom_port)
                    if found == set(CHECKS):
                        break
                    await asyncio.sleep(0.25)
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            log_file.close()

    log_text = (tmp_path / "prometheus.log").read_text()[-2000:]
    assert found == set(CHECKS), log_text


# ---------------------------------------------------------------- the running agent


async def test_the_agent_serves_its_checks_at_metrics_behind_the_token(
    write_config: Callable[[str], Path], redis_url: str
) -> None:
    from probe.agent import Agent

    config = load_config(
        write_config(
            f"""
agent: {{ listen: "127.0.0.1:0", version: 1.0.0-agent, auth_token: {TOKEN} }}
checks:
  - {{ name: cache, type: redis, url: "{redis_url}", interval: 10s, timeout: 2s }}
alerts:
  notifiers: [{{ type: alertmanager, urls: ["http://127.0.0.1:{free_port()}"] }}]
"""
        )
    )
    agent = Agent(config)
    await agent.start()
    try:
        url = f"http://127.0.0.1:{agent.port}/metrics"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(url) as anonymous:
                assert anonymous.status == 401
            up = 0.0
            for _ in range(40):  # the first run starts at once; allow 10 s
                async with http.get(url, headers=auth) as resp:
                    assert resp.status == 200
                    families = {
                        f.name: f for f in text_string_to_metric_families(await resp.text())
                    }
                up = next(s.value for s in families["probe_check_up"].samples)
                if up == 1:
                    break
                await asyncio.sleep(0.25)
    finally:
        await agent.stop()

    assert up == 1
    assert [s.labels for s in families["probe_build_info"].samples] == [{"version": "1.0.0-agent"}]
    notifier_results = {
        (s.labels["notifier"], s.labels["result"]) for s in families["probe_notifications"].samples
    }
    assert notifier_results == {("alertmanager", r) for r in ("sent", "failed", "dropped")}


def family_blocks(body: bytes) -> dict[str, bytes]:
    """{family name: its `# HELP` line through its last sample}; process_* move with time."""
    text = body.removesuffix(b"# EOF\n")
    blocks = [b"# HELP " + block for block in text.split(b"# HELP ")[1:]]
    named = {block.split(b" ", 3)[2].decode(): block for block in blocks}
    return {name: block for name, block in named.items() if not name.startswith("process_")}


@pytest.mark.parametrize("accept", ["text/plain", "application/openmetrics-text; version=1.0.0"])
async def test_served_bytes_are_prometheus_clients_family_for_family(
    scraped: tuple[ResultStore, CollectorRegistry, dict[str, dict[str, int]]],
    aiohttp_client: Any,
    accept: str,
) -> None:
    # The per-check families are written by probe itself, in slices on the loop; every
    # byte must be what prometheus_client writes for the same families and values.
    store, registry, _ = scraped
    client = await aiohttp_client(web_app(store, registry))
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": accept}
    response = await client.get("/metrics", headers=auth)
    served = await response.read()
    encoder, content_type = choose_encoder(accept)
    assert isinstance(registry, ProbeRegistry)
    expected = encoder(registry.frozen())
    assert response.headers["Content-Type"] == content_type
    assert served.endswith(b"# EOF\n") == expected.endswith(b"# EOF\n")
    assert family_blocks(served) == family_blocks(expected)
    assert b"probe_queue_jobs" in served and b'probe_check_up{check="closed_port"} 0.0' in served
