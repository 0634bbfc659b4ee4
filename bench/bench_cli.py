"""Start-up cost of `probe check` and `probe ping`, next to their floors (run by hand).

    .venv/bin/python bench/bench_cli.py [--runs 10]

`probe check` runs a config shaped like the default one, with local targets only (this
machine has no internet): PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 (only
read), and an HTTP server this script starts. Its floor is `python -c 'import ...'` of
the libraries that config needs. `probe ping` is compared with `python -c pass` and
`curl -s`. Prints medians of wall time and the ratios to the floors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

BENCH_CONFIG = """
agent: { version: bench }
checks:
  - name: database
    type: postgres
    dsn: ${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
    critical: true
    warn: { response_time: 500ms, connections: 80% }
  - name: redis
    type: redis
    url: ${REDIS_URL:-redis://127.0.0.1:6379/0}
    critical: true
    warn: { response_time: 200ms, memory: 80% }
  - name: external_services
    type: group
    checks:
      - { name: paystack, type: http, url: "${APP_URL}/paystack", expect: { status: [200, 401] } }
      - { name: openai, type: http, url: "${APP_URL}/openai", expect: { status: [200, 401] } }
  - name: app
    type: http
    url: ${APP_URL}/api/health/live
    warn: { response_time: 1s }
  - name: queues
    type: bullmq
    url: ${REDIS_URL:-redis://127.0.0.1:6379/0}
    prefix: probe-bench
    queues: [billing, email, whatsapp, ai-assistant]
    warn: { backlog: 1000 }
  - name: system
    type: system
    warn: { cpu: 80%, memory: 80% }
"""

# What that config needs: its drivers and the config libraries. `import pydantic` alone is
# lazy and loads almost nothing; BaseModel is what any pydantic config has to load.
FLOOR_IMPORTS = (
    "import asyncio, asyncpg, redis.asyncio, aiohttp, psutil, yaml; from pydantic import BaseModel"
)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"alive"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def wall(argv: list[str], env: dict[str, str], runs: int, ok: tuple[int, ...] = (0,)) -> float:
    times = []
    for _ in range(runs + 1):  # the first run warms the page cache and is dropped
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode not in ok:
            sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stdout!r} {done.stderr!r}")
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    env = dict(os.environ, PYTHONPATH=str(REPO), APP_URL=base)

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(BENCH_CONFIG)
        rows = [
            ("python -c pass", wall([PYTHON, "-c", "pass"], env, runs)),
            ("import floor", wall([PYTHON, "-c", FLOOR_IMPORTS], env, runs)),
            (
                "probe check",
                wall([PYTHON, "-m", "probe", "check", "-c", str(config)], env, runs, (0, 1)),
            ),
            ("probe ping", wall([PYTHON, "-m", "probe", "ping", f"{base}/live"], env, runs)),
        ]
        curl = shutil.which("curl")
        if curl:
            rows.append(
                ("curl -s", wall([curl, "-s", "-o", "/dev/null", f"{base}/live"], env, runs))
            )
    server.shutdown()

    figures = dict(rows)
    print(f"median of {runs} runs (wall time)")
    for name, seconds in rows:
        print(f"  {name:<16} {seconds * 1000:7.1f} ms")
    print(f"  probe check / import floor   {figures['probe check'] / figures['import floor']:.2f}x")
    print(
        f"  probe ping / python -c pass  {figures['probe ping'] / figures['python -c pass']:.2f}x"
    )
    if "curl -s" in figures:
        print(f"  probe ping / curl -s         {figures['probe ping'] / figures['curl -s']:.2f}x")
    print(f"  floor imports: {FLOOR_IMPORTS}")


if __name__ == "__main__":
    main()
