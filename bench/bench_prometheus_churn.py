"""Memory of a real agent whose `prometheus` check scrapes an endpoint that makes fresh
series on every scrape (a request id in a label, a common prom-client mistake).

    .venv/bin/python bench/bench_prometheus_churn.py [--series 50000] [--seconds 40]

The endpoint (a child process) serves `--series` new `http_requests_total` series per
scrape (about 3.3 MB at 50,000, under the 10 MiB body cap) plus a steady 5xx counter. The
agent (`probe run`, interval 2s, window 5m) is sampled for RSS every 5 seconds; the
endpoint then goes back to two series, and RSS is read once more after `--calm` seconds.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ENDPOINT = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, fresh, mode_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
scrapes = 0

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global scrapes
        scrapes += 1
        churn = open(mode_file).read().strip() == "churn"
        lines = ["# TYPE http_requests_total counter",
                 f'http_requests_total{{status="500"}} {scrapes}',
                 f'http_requests_total{{status="200"}} {scrapes * 10}']
        if churn:
            lines += [f'http_requests_total{{status="200",request_id="s{scrapes}-{i}"}} 1'
                      for i in range(fresh)]
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

CONFIG = """
agent: {{ listen: "127.0.0.1:{agent_port}", history: "off" }}
checks:
  - name: churn
    type: prometheus
    url: http://127.0.0.1:{port}/metrics
    interval: 2s
    timeout: 1500ms
    window: 5m
    series: {{ e: 'http_requests_total{{status="500"}}', r: http_requests_total }}
    measures: {{ ratio: {{ ratio: [e, r] }} }}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(url: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer in {seconds:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--calm", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mode = Path(tmp) / "mode"
        mode.write_text("calm")
        port, agent_port = free_port(), free_port()
        config = Path(tmp) / "probe.yaml"
        config.write_text(CONFIG.format(port=port, agent_port=agent_port))
        endpoint = subprocess.Popen(
            [sys.executable, "-c", ENDPOINT, str(port), str(args.series), str(mode)]
        )
        agent = subprocess.Popen(
            [sys.executable, "-m", "probe", "run", "-c", str(config)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/metrics")
            wait_for(f"http://127.0.0.1:{agent_port}/live")
            time.sleep(4)
            print(f"calm: RSS {rss_mb(agent.pid):.0f} MB")
            mode.write_text("churn")
            for t in range(5, args.seconds + 1, 5):
                time.sleep(5)
                print(f"t={t}s ({args.series:,} new series per scrape): {rss_mb(agent.pid):.0f} MB")
            with urllib.request.urlopen(f"http://127.0.0.1:{agent_port}/health?verbose=1") as r:
                (check,) = json.loads(r.read())["checks"]
            notes = [o.get("note", "") for o in check.get("observations", [])]
            print(f"check: {check['status']} {check.get('output', '')!r} notes {notes}")
            mode.write_text("calm")
            time.sleep(args.calm)
            print(f"{args.calm}s after the churn ended: {rss_mb(agent.pid):.0f} MB")
            with urllib.request.urlopen(f"http://127.0.0.1:{agent_port}/health?verbose=1") as r:
                (check,) = json.loads(r.read())["checks"]
            notes = [o.get("note", "") for o in check.get("observations", [])]
            print(f"check: {check['status']} {check.get('output', '')!r} notes {notes}")
        finally:
            for proc in (agent, endpoint):
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
