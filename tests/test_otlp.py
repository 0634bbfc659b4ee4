"""`agent.otlp`: the /metrics families pushed to a real OTLP/HTTP receiver, decoded with the
protocol's own classes, compared with what /metrics says for the same agent; dead, slow and
refusing endpoints; the API key header; the config error without the extra."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from prometheus_client.parser import text_string_to_metric_families

from probe.agent import Agent
from probe.contract.config import ConfigError, load_config
from probe.core.model import Status
from tests.cli_helpers import REPO, cli_env
from tests.conftest import free_port
from tests.otlp_receiver import Answer, OtlpReceiver
from tests.support import until

CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
API_KEY = "glc_otlp-secret-4d2b9e"  # a vendor's key; must never be printed

AGENT = """
agent:
  name: otlp-test
  listen: "127.0.0.1:0"
  state_file: "{state}"
  history: "off"
  otlp: {{ endpoint: "{endpoint}", every: 1s, headers: {{ Authorization: "Basic {key}" }} }}
defaults: {{ interval: {interval}, timeout: 900ms }}
checks:  # critical checks run at once
  - {{ name: cache, type: redis, url: "{redis}", critical: true }}
  - {{ name: closed, type: tcp, host: 127.0.0.1, port: {closed}, critical: true }}
  - {{ name: system, type: system, critical: true }}
"""


def agent_config(
    tmp_path: Path, endpoint: str, redis_url: str, interval: str = "1s", key: str = API_KEY
) -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(
        AGENT.format(
            state=tmp_path / "state.json",
            endpoint=endpoint,
            redis=redis_url,
            interval=interval,
            closed=free_port(),
            key=key,
        )
    )
    return path


async def started(path: Path) -> Agent:
    agent = Agent(load_config(path), path)
    await agent.start()
    return agent


def otlp_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(("probe.otlp", "opent"))]


# ---------------------------------------------------------------- what is pushed


def _values(metric: Metric) -> dict[tuple[tuple[str, str], ...], float]:
    kind = metric.WhichOneof("data")
    assert kind is not None, metric.name
    points = getattr(metric, kind).data_points
    return {
        tuple(sorted((a.key, a.value.string_value) for a in p.attributes)): p.as_double
        for p in points
    }


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


async def test_a_push_carries_the_families_and_values_of_metrics(
    tmp_path: Path, redis_url: str, otlp_receiver: OtlpReceiver
) -> None:
    otlp_receiver.api_key = f"Basic {API_KEY}"
    # Checks that run once: nothing moves between the push and the scrape but process_*.
    agent = await started(agent_config(tmp_path, otlp_receiver.endpoint, redis_url, "1h"))
    try:
        await until(lambda: all(agent.store.latest(c) for c in ("cache", "closed", "system")))
        seen = len(otlp_receiver.received)
        await until(lambda: len(otlp_receiver.received) >= seen + 2, timeout=5)
        first, pushed = otlp_receiver.received[-2:]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{agent.port}/metrics") as resp,
        ):
            text = await resp.text()
    finally:
        await agent.stop()

    # The API key travelled, and the receiver took every push.
    assert pushed.status == 200 and pushed.headers["Authorization"] == f"Basic {API_KEY}"
    assert pushed.headers["Content-Type"] == "application/x-protobuf"
    resource = pushed.resource()
    assert resource["service.name"] == "probe"
    assert resource["service.instance.id"].startswith("otlp-test@")

    metrics = pushed.metrics()
    families = list(text_string_to_metric_families(text))
    assert len(families) > 20
    names = set()
    for family in families:
        name = f"{family.name}_total" if family.type == "counter" else family.name
        names.add(name)
        if not family.samples:  # no series yet (no notifier has sent anything)
            assert name not in metrics
            continue
        metric = metrics[name]
        assert metric.description == family.documentation, name
        kind = metric.WhichOneof("data")
        moving = family.name.startswith("process_") or family.name == "probe_otlp_exports"
        if family.type == "counter":
            assert kind == "sum", name
            assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == CUMULATIVE
            expected = {
                tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name
            }
        elif family.type == "gauge":
            assert kind == "gauge", name
            expected = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        else:
            assert family.type == "histogram" and kind == "histogram", name
            assert metric.histogram.aggregation_temporality == CUMULATIVE
            _same_histogram(metric, family.samples)
            continue
        got = _values(metric)
        assert got.keys() == expected.keys(), name
        if not moving:
            for labels, value in expected.items():
                assert _same(got[labels], value), (name, labels, got[labels], value)
    assert set(metrics) == {n for n in names if n in metrics}  # nothing /metrics lacks

    # Units from the names' unit suffixes, in UCUM.
    units = {n: m.unit for n, m in metrics.items()}
    assert units["probe_check_duration_seconds"] == "s"
    assert units["probe_check_last_run_timestamp_seconds"] == "s"
    assert units["probe_memory_usage_bytes"] == "By"
    assert units["probe_cpu_usage_ratio"] == "1"
    assert units["probe_check_runs_total"] == ""
    assert units["process_cpu_seconds_total"] == "s"

    # A counter after known runs: each check ran once, and the fail run is counted once.
    runs = _values(metrics["probe_check_runs_total"])
    assert runs[(("check", "cache"), ("status", "pass"))] == 1.0
    assert runs[(("check", "closed"), ("status", "fail"))] == 1.0
    assert runs[(("check", "closed"), ("status", "pass"))] == 0.0
    # Cumulative: the same start time in every push, counted from the agent's start.
    [before] = first.metrics()["probe_check_runs_total"].sum.data_points[:1]
    [after] = metrics["probe_check_runs_total"].sum.data_points[:1]
    assert before.start_time_unix_nano == after.start_time_unix_nano
    assert after.time_unix_nano > before.time_unix_nano > before.start_time_unix_nano
    exports = _values(metrics["probe_otlp_exports_total"])
    assert exports[(("result", "ok"),)] >= 1.0


def _same_histogram(metric: Metric, samples: list[Any]) -> None:
    by_check: dict[str, dict[str, float]] = {}
    for s in samples:
        key = s.name.rpartition("_")[2] + s.labels.get("le", "")
        by_check.setdefault(s.labels["check"], {})[key] = s.value
    assert len(metric.histogram.data_points) == len(by_check)
    for point in metric.histogram.data_points:
        [check] = [a.value.string_value for a in point.attributes if a.key == "check"]
        want = by_check[check]
        bounds = sorted(float(k[len("bucket") :]) for k in want if k.startswith("bucket"))
        assert list(point.explicit_bounds) == [b for b in bounds if not math.isinf(b)]
        running = 0
        for bound, count in zip(bounds, point.bucket_counts, strict=True):
            running += count
            label = "+Inf" if math.isinf(bound) else repr(bound)
            assert running == want[f"bucket{label}"], (check, bound)
        assert point.count == want["count"] and point.sum == pytest.approx(want["sum"])
        assert not point.HasField("min") and not point.HasField("max")  # unknown, not made up


# ---------------------------------------------------------------- dead and slow endpoints


async def test_a_refused_endpoint_is_one_line_until_it_recovers(
    tmp_path: Path, redis_url: str, otlp_receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await otlp_receiver.refuse()
    agent = await started(agent_config(tmp_path, otlp_receiver.endpoint, redis_url))
    try:
        await until(lambda: agent.otlp.counts["failed"] >= 3, timeout=8)
        await otlp_receiver.accept()
        await until(lambda: agent.otlp.counts["ok"] >= 1, timeout=5)
        runs = sum(agent.store.stats("cache").runs.values())
    finally:
        await agent.stop()

    where = f"127.0.0.1:{otlp_receiver.port}"
    warning, recovered = otlp_lines(caplog)
    assert warning == (
        f"OTLP push to http://{where}/v1/metrics failed: connection refused ({where}); "
        "retrying every 1s, logging again once it recovers"
    )
    failed = agent.otlp.counts["failed"]
    assert recovered.startswith(f"OTLP push to http://{where}/v1/metrics recovered after ")
    assert recovered.endswith(f" ({failed} failed pushes)")
    assert runs >= 3  # the checks ran on meanwhile


async def test_a_hanging_endpoint_delays_no_check_and_no_endpoint(
    tmp_path: Path, redis_url: str, otlp_receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    otlp_receiver.plan(*[Answer(hang=True)] * 3)
    agent = await started(agent_config(tmp_path, otlp_receiver.endpoint, redis_url))
    slowest = 0.0
    try:
        await until(lambda: otlp_receiver.received, timeout=5)  # a push is hanging now
        runs_before = sum(agent.store.stats("cache").runs.values())
        async with aiohttp.ClientSession() as http:
            for _ in range(20):  # 2 s of hung pushes
                began = time.monotonic()
                async with http.get(f"http://127.0.0.1:{agent.port}/live") as resp:
                    assert resp.status == 200
                slowest = max(slowest, time.monotonic() - began)
                await asyncio.sleep(0.1)
        runs_during = sum(agent.store.stats("cache").runs.values()) - runs_before
        await until(lambda: agent.otlp.counts["ok"] >= 1, timeout=8)
        counts = dict(agent.otlp.counts)
    finally:
        await agent.stop()

    assert slowest < 0.5, slowest
    assert runs_during >= 1
    assert agent.store.latest("cache") is not None
    assert agent.store.effective_status("cache") is Status.PASS
    assert counts["failed"] >= 1
    warning, recovered = otlp_lines(caplog)
    assert "failed: no answer within 1s (127.0.0.1:" in warning
    assert "recovered after" in recovered


async def test_503_and_429_answers_are_one_outage(
    tmp_path: Path, redis_url: str, otlp_receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    otlp_receiver.plan(*[Answer(503)] * 3, *[Answer(429, retry_after="1")] * 3, *[Answer(503)] * 2)
    agent = await started(agent_config(tmp_path, otlp_receiver.endpoint, redis_url))
    try:
        await until(lambda: otlp_receiver.accepted, timeout=15)
        await until(lambda: agent.otlp.counts["ok"] >= 1, timeout=5)
    finally:
        await agent.stop()

    statuses = [r.status for r in otlp_receiver.received]
    assert statuses[:8] == [503] * 3 + [429] * 3 + [503] * 2
    warning, recovered = otlp_lines(caplog)
    assert "failed: HTTP 503 Service Unavailable: try again later;" in warning
    assert "recovered after" in recovered


# ---------------------------------------------------------------- the process as users run it


def test_the_api_key_is_sent_and_never_printed(tmp_path: Path, redis_url: str) -> None:
    """`probe run` with a key the receiver rejects (and quotes back, as some vendors do)."""

    async def scenario() -> tuple[OtlpReceiver, str]:
        receiver = await OtlpReceiver(api_key="Basic the-right-key").start()
        try:
            path = agent_config(tmp_path, receiver.endpoint, redis_url)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "probe",
                "run",
                "-c",
                str(path),
                "--log-format",
                "text",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                cwd=REPO,
                env=cli_env(),
            )
            await until(lambda: len(receiver.received) >= 3, timeout=15)
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 15)
            return receiver, stderr.decode()
        finally:
            await receiver.close()

    receiver, stderr = asyncio.run(scenario())
    assert all(r.headers["Authorization"] == f"Basic {API_KEY}" for r in receiver.received)
    assert [r.status for r in receiver.received][:3] == [401] * 3
    lines = [line for line in stderr.splitlines() if "OTLP" in line]
    assert len(lines) == 1, stderr
    assert "failed: HTTP 401 Unauthorized: invalid API key ***;" in lines[0]
    assert API_KEY not in stderr


def test_without_the_extra_agent_otlp_says_what_to_install(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text('agent: { otlp: { endpoint: "https://otlp.example.com" } }\nchecks: []\n')
    # The exporter cannot be imported, as in an install without probe[otlp].
    script = (
        "import sys; sys.modules['opentelemetry.exporter.otlp.proto.http.metric_exporter'] = None;"
        "from probe.cli.main import main; sys.exit(main(['validate', '-c', sys.argv[1]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env={**cli_env(), "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"{path}: agent.otlp: needs the otlp extra, which is not installed: "
        "pip install 'probe[otlp]'"
    )
    assert os.path.exists(path)


async def test_a_reload_moves_the_push_to_the_new_endpoint_and_can_stop_it(
    tmp_path: Path, redis_url: str, otlp_receiver: OtlpReceiver
) -> None:
    path = agent_config(tmp_path, otlp_receiver.endpoint, redis_url)
    agent = await started(path)
    second = await OtlpReceiver().start()
    try:
        await until(lambda: otlp_receiver.accepted, timeout=5)
        path.write_text(path.read_text().replace(otlp_receiver.endpoint, second.endpoint))
        assert await agent.reload()
        await until(lambda: second.accepted, timeout=5)
        before = len(otlp_receiver.received)
        await asyncio.sleep(1.5)
        assert len(otlp_receiver.received) == before  # the old endpoint hears no more

        text = path.read_text()
        path.write_text(text[: text.index("  otlp:")] + text[text.index("defaults:") :])
        assert await agent.reload()
        stopped_at = len(second.received)
        await asyncio.sleep(1.5)
        assert len(second.received) == stopped_at
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{agent.port}/metrics") as resp,
        ):
            metrics = await resp.text()
    finally:
        await agent.stop()
        await second.close()
    # The pushes made so far are still counted.
    assert 'probe_otlp_exports_total{result="ok"}' in metrics


ENDPOINT = 'endpoint: "https://o.example.com"'
URL_WORDS = "expected an http:// or https:// URL like https://otlp.example.com"


@pytest.mark.parametrize(
    ("otlp", "problem"),
    [
        ("{ endpoint: otlp.example.com }", f"agent.otlp.endpoint: {URL_WORDS}"),
        (f"{{ {ENDPOINT}, every: 500ms }}", "agent.otlp.every: must be at least 1s, got 0.5s"),
        ("{ every: 30s }", "agent.otlp.endpoint: required key is missing"),
        (
            f'{{ {ENDPOINT}, headers: {{ "a b": x }} }}',
            "agent.otlp.headers: invalid header name 'a b'",
        ),
        (f"{{ {ENDPOINT}, timeout: 5s }}", "agent.otlp.timeout: unknown key"),
    ],
)
def test_a_broken_otlp_section_is_one_line(tmp_path: Path, otlp: str, problem: str) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(f"agent: {{ otlp: {otlp} }}\nchecks: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: {problem}"]
