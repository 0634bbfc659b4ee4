"""Cost of one `prometheus` run on a 2,000-series scrape, and /ping throughput against
/live on the same agent in the same run.

    .venv/bin/python bench/bench_prometheus.py [--runs 200] [--seconds 5]

The scrape is served by a separate process (python -m http.server over a file), so the
CPU measured (`time.process_time`) is the check's own: the request, the read, the parse
and the windows. Two shapes: an app's scrape (prom-client default metrics, a request
histogram and 400 `http_requests_total` series among 2,000) and a worst case where every
one of the 2,000 series is `http_requests_total`.

Throughput: a real agent (`probe run`) with a heartbeat check, driven by `wrk -c50` for
`--seconds` per path, /live first then /ping/billing, twice each in alternation.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from probe.checks.prometheus import PrometheusConfig  # noqa: E402
from probe.contract.plugin import AgentServices  # noqa: E402
from probe.engine.factory import build_runner  # noqa: E402
from probe.engine.pings import Inbox  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def app_scrape(total: int = 2000, requests: int = 400) -> str:
    lines = ["# HELP http_requests_total HTTP requests", "# TYPE http_requests_total counter"]
    for i in range(requests):
        status = ("200", "201", "404", "500", "503")[i % 5]
        lines.append(
            f'http_requests_total{{method="GET",route="/api/r{i // 5}",status="{status}"}} {i * 7}'
        )
    lines += [
        "# HELP http_request_duration_seconds x",
        "# TYPE http_request_duration_seconds histogram",
    ]
    i = 0
    while len(lines) < total + 4:
        le = ("0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf")[i % 8]
        lines.append(
            f'http_request_duration_seconds_bucket{{route="/api/r{i // 8}",le="{le}"}} {i}'
        )
        i += 1
    return "\n".join(lines) + "\n"


def worst_scrape(total: int = 2000) -> str:
    lines = ["# TYPE http_requests_total counter"]
    for i in range(total):
        status = ("200", "500")[i % 2]
        lines.append(f'http_requests_total{{route="/api/r{i // 2}",status="{status}"}} {i * 3}')
    return "\n".join(lines) + "\n"


async def cpu_per_run(url: str, runs: int) -> float:
    cfg = PrometheusConfig.model_validate(
        {
            "name": "api_errors",
            "type": "prometheus",
            "url": url,
            "window": "5m",
            "series": {
                "errors": 'http_requests_total{status=~"5.."}',
                "requests": "http_requests_total",
            },
            "measures": {
                "error_ratio": {"ratio": ["errors", "requests"]},
                "error_rate": {"rate": "errors"},
                "error_spike": {"spike": "errors", "baseline": "1h"},
            },
        }
    )
    now = [1_800_000_000.0]
    runner = build_runner(
        cfg, clock=lambda: now[0], agent=AgentServices(Inbox(clock=lambda: now[0]))
    )
    try:
        for _ in range(5):  # warm: connection, imports, first windows
            await runner.run()
        started = time.process_time()
        for _ in range(runs):
            now[0] += 15
            result = await runner.run()
        spent = (time.process_time() - started) / runs
        assert result.output == "" or "error_" in result.output, result.output
        return spent
    finally:
        await runner.close()


def serve_files(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(port)
    return process, port


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def wrk(url: str, seconds: int) -> float:
    done = subprocess.run(
        ["wrk", "-t2", "-c50", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert found, done.stdout
    return float(found.group(1))


def throughput(seconds: int) -> tuple[float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "probe.yaml"
        config.write_text(
            f"""
agent: {{ listen: "127.0.0.1:{port}", state_file: "{tmp}/state.json", history: "off" }}
checks:
  - {{ name: billing, type: heartbeat, every: 1h }}
"""
        )
        agent = subprocess.Popen(
            [sys.executable, "-m", "probe", "run", "--config", str(config)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(port)
            live, ping = [], []
            for _ in range(2):
                live.append(wrk(f"http://127.0.0.1:{port}/live", seconds))
                ping.append(wrk(f"http://127.0.0.1:{port}/ping/billing", seconds))
            return max(live), max(ping)
        finally:
            agent.terminate()
            agent.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "app").write_text(app_scrape())
        Path(tmp, "worst").write_text(worst_scrape())
        server, port = serve_files(tmp)
        try:
            for shape in ("app", "worst"):
                size = Path(tmp, shape).stat().st_size
                spent = asyncio.run(cpu_per_run(f"http://127.0.0.1:{port}/{shape}", args.runs))
                print(
                    f"prometheus run, 2,000-series scrape ({shape}, {size / 1024:.0f} KiB): "
                    f"{spent * 1000:.2f} ms CPU per run (goal < 20 ms)"
                )
        finally:
            server.terminate()
            server.wait(5)
    if shutil.which("wrk") is None:
        print("wrk not found: /ping throughput not measured (apt-get install wrk)")
        return
    live, ping = throughput(args.seconds)
    print(
        f"/live {live:,.0f} req/s, /ping/billing {ping:,.0f} req/s: "
        f"{ping / live:.2f}x (goal >= 0.8x)"
    )


if __name__ == "__main__":
    main()
