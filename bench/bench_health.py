"""/health requests per second: probe's server next to a bare aiohttp app serving the same bytes.

Run by hand: `.venv/bin/python bench/bench_health.py [--duration 5]`. Needs `wrk`
(Debian package `wrk`). Both servers run in their own process pinned to CPU 0 and wrk
to CPU 1, one after the other, so they compete for nothing but the same machine.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE_SERVER = """
import asyncio, sys
from aiohttp import web
from prometheus_client import CollectorRegistry
from probe.contract.config import load_config
from probe.core.model import CheckResult, Status
from probe.engine.store import ResultStore
from probe.web.routes import build_app
from probe.web.settings import LiveSettings

config = load_config(__import__("pathlib").Path(sys.argv[1]))
store = ResultStore(config)
for check in config.checks:
    store.record(check.name, CheckResult(Status.PASS, 0.004, "", store.clock()))
open(sys.argv[3], "wb").write(store.health.body)
app = build_app(store, LiveSettings.of(config.agent), CollectorRegistry())
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
"""

BARE_SERVER = """
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def health(request):
    return web.Response(body=body, content_type="application/json",
                        headers={"Cache-Control": "no-store"})
app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

CONFIG = """
agent: { name: bench, version: 1.2.3 }
checks:
""" + "".join(
    f"  - {{ name: check-{i}, type: tcp, host: 127.0.0.1, port: 9, critical: {i < 2} }}\n"
    for i in range(10)
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


def wrk(port: int, duration: int) -> float:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            "-c50",
            f"-d{duration}s",
            f"http://127.0.0.1:{port}/health",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"could not read wrk output:\n{out}")
    return float(match.group(1))


def serve_and_measure(argv: list[str], port: int, duration: int) -> float:
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", *argv], cwd=ROOT)
    try:
        wait_up(port)
        wrk(port, 1)  # warm-up
        return wrk(port, duration)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "probe.yaml"
        config.write_text(CONFIG)
        body = Path(tmp) / "body.json"
        probe_rps, bare_rps = [], []
        for _ in range(args.rounds):
            port = free_port()
            probe_rps.append(
                serve_and_measure(
                    [PROBE_SERVER, str(config), str(port), str(body)], port, args.duration
                )
            )
            port = free_port()
            bare_rps.append(
                serve_and_measure([BARE_SERVER, str(port), str(body)], port, args.duration)
            )
        body_size = body.stat().st_size
    best_probe, best_bare = max(probe_rps), max(bare_rps)
    print(f"/health body: {body_size} bytes, 10 checks")
    print(
        f"probe server: {', '.join(f'{r:,.0f}' for r in probe_rps)} req/s (best {best_probe:,.0f})"
    )
    print(f"bare aiohttp: {', '.join(f'{r:,.0f}' for r in bare_rps)} req/s (best {best_bare:,.0f})")
    print(f"ratio probe/bare: {best_probe / best_bare:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
