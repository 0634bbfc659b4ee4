"""Bytes per check by check type (http, tcp, postgres, redis), measured with tracemalloc.

Run by hand (never in the test suite):

    .venv/bin/python bench/bench_memory.py [--types http,tcp,postgres,redis] [--sizes 50,250]

For each type and size, a fresh child process loads a config of N checks of that type
(through `load_config`, as `probe run` does), starts the real agent (history and status
page off), waits until every check has run three times, reads /metrics (OpenMetrics and
text) and /health once, collects garbage and reports what tracemalloc still traces and
the process's RSS. Bytes per check are the difference between the two sizes divided by
the difference in checks, so imports and the agent's fixed cost cancel out. The targets
are a local aiohttp server (http, tcp) in another process, and a throw-away PostgreSQL
cluster and redis-server on free ports (the machine's shared servers are never used:
hundreds of connections would crowd them). `--top` lists where the larger size's bytes
were allocated, by file and line (with `--frames N`, by their last N callers).

`--default-config` measures instead the agent with `config/probe.yaml` as shipped (history
in a temporary sqlite file; the internet checks fail where there is no internet) next to
its import floor: a bare Python importing what the configured check types need (the
floor of `bench/bench_cli.py`). RSS is the median of a reading a second over `--window`
seconds, after `--settle` seconds of runs. Issue 28's goal is a ratio of 1.1 or less.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.pg_cluster import Cluster, _as_postgres, _bin  # noqa: E402

TARGET = r"""
import sys
from aiohttp import web
async def hit(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_get("/{tail:.*}", hit)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
            backlog=4096)
"""

CHILD = r"""
import asyncio, gc, json, sys, time, tracemalloc
tracemalloc.start(int(sys.argv[3]))
from pathlib import Path
import aiohttp
from probe.agent import Agent
from probe.contract.config import load_config

OPENMETRICS = "application/openmetrics-text; version=1.0.0"

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

async def main():
    config = load_config(Path(sys.argv[1]))
    runs = int(sys.argv[2])
    agent = Agent(config)
    await agent.start()
    names = agent.store.check_names()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(agent.store.stats(n).duration_count >= runs for n in names):
            break
        await asyncio.sleep(0.5)
    failing = sum(
        1 for n in names if (r := agent.store.latest(n)) is None or r.status.value == "fail"
    )
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{agent.port}"
        for accept in (OPENMETRICS, "text/plain"):
            async with http.get(f"{base}/metrics", headers={"Accept": accept}) as response:
                await response.read()
        async with http.get(f"{base}/health") as response:
            await response.read()
    await asyncio.sleep(1.5)  # the /metrics bytes are dropped a second after a scrape
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    traced = tracemalloc.get_traced_memory()[0]
    snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]).dump(sys.argv[4])
    print(json.dumps({"traced": traced, "rss_mb": rss_mb(), "failing": failing}))
    await agent.stop()

asyncio.run(main())
"""


# What the default config's check types need (postgres: asyncpg; redis, bullmq: redis;
# http, statuspage: aiohttp; system: psutil) and the config's reader: bench_cli's floor.
FLOOR_IMPORTS = (
    "import asyncio, asyncpg, redis.asyncio, aiohttp, psutil, yaml; from pydantic import BaseModel"
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def median_rss(process: subprocess.Popen[bytes], settle: float, window: int) -> float:
    time.sleep(settle)
    readings = []
    for _ in range(window):
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} while measured")
        readings.append(rss_mb(process.pid))
        time.sleep(1)
    return statistics.median(readings)


def default_config(args: argparse.Namespace) -> None:
    """RSS of `probe run` with the shipped config, and of its import floor."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        env = {
            **os.environ,
            "PROBE_LISTEN": f"127.0.0.1:{free_port()}",
            "PROBE_HISTORY": f"sqlite:///{tmp}/history.db",
            "PROBE_STATE_FILE": f"{tmp}/state.json",
        }
        agent = subprocess.Popen(
            [sys.executable, "-m", "probe", "run", "-c", str(ROOT / "config" / "probe.yaml")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            agent_mb = median_rss(agent, args.settle, args.window)
        finally:
            agent.terminate()
            agent.wait(timeout=30)
    hold = f"{FLOOR_IMPORTS}; import time; time.sleep({args.window + 5})"
    floor = subprocess.Popen([sys.executable, "-c", hold], cwd=ROOT)
    try:
        floor_mb = median_rss(floor, 2.0, args.window)
    finally:
        floor.terminate()
        floor.wait(timeout=10)
    print(json.dumps({"agent_rss_mb": round(agent_mb, 1), "floor_rss_mb": round(floor_mb, 1)}))
    print(
        f"default config: agent {agent_mb:.1f} MB, import floor {floor_mb:.1f} MB, "
        f"{agent_mb / floor_mb:.2f}x the floor (goal <= 1.1x)"
    )
    print(f"  floor imports: {FLOOR_IMPORTS}")


def config_text(kind: str, n: int, targets: dict[str, str], interval: int) -> str:
    lines = [
        "agent: { name: bench, version: bench, history: 'off', status_page: 'off',",
        "         listen: '127.0.0.1:0' }",
        f"defaults: {{ interval: {interval}s, timeout: 3s }}",
        "checks:",
    ]
    for i in range(n):
        name = f"{kind}-{i:04d}"
        if kind == "http":
            lines.append(f"  - {{ name: {name}, type: http, url: '{targets['http']}/p/{i}' }}")
        elif kind == "tcp":
            lines.append(f"  - {{ name: {name}, type: tcp, {targets['tcp']} }}")
        elif kind == "postgres":
            lines.append(f"  - {{ name: {name}, type: postgres, dsn: '{targets['postgres']}' }}")
        elif kind == "redis":
            lines.append(f"  - {{ name: {name}, type: redis, url: '{targets['redis']}' }}")
    return "\n".join(lines) + "\n"


def measure(kind: str, n: int, targets: dict[str, str], args: argparse.Namespace, work: Path):  # type: ignore[no-untyped-def]
    path = work / f"{kind}-{n}.yaml"
    path.write_text(config_text(kind, n, targets, args.interval))
    snap = work / f"{kind}-{n}.snapshot"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(args.runs), str(args.frames), str(snap)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} x {n}: {done.stderr[-2000:]}")
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    found["snapshot"] = str(snap)
    return found


def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.types.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        port = free_port()
        target = subprocess.Popen([sys.executable, "-c", TARGET, str(port)])
        cluster: Cluster | None = None
        redis: subprocess.Popen[bytes] | None = None
        targets = {"http": f"http://127.0.0.1:{port}", "tcp": f"host: 127.0.0.1, port: {port}"}
        try:
            if "postgres" in kinds:
                cluster = Cluster()
                options = (
                    f"-p {cluster.port} -k {cluster.root} -c listen_addresses=127.0.0.1 "
                    f"-c fsync=off -c max_connections={max(sizes) + 50}"
                )
                _as_postgres(
                    _bin("pg_ctl"), "-D", str(cluster.data), "-o", options,
                    "-l", str(cluster.root / "log"), "-w", "start",
                )  # fmt: skip
                targets["postgres"] = cluster.dsn()
            if "redis" in kinds:
                redis_port = free_port()
                redis = subprocess.Popen(
                    [
                        shutil.which("redis-server") or "/usr/bin/redis-server",
                        "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", str(work), "--maxclients", "10000",
                    ],
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
                targets["redis"] = f"redis://127.0.0.1:{redis_port}/0"
            time.sleep(1.0)
            rows = []
            for kind in kinds:
                found = {n: measure(kind, n, targets, args, work) for n in sizes}
                low, high = found[sizes[0]], found[sizes[-1]]
                span = sizes[-1] - sizes[0]
                per_check = (int(str(high["traced"])) - int(str(low["traced"]))) / span
                rss = (float(str(high["rss_mb"])) - float(str(low["rss_mb"]))) / span
                rows.append((kind, per_check, rss * 1024 * 1024, found))
                print(
                    json.dumps(
                        {
                            "type": kind,
                            "bytes_per_check": round(per_check),
                            "rss_bytes_per_check": round(rss * 1024 * 1024),
                            "sizes": {
                                n: {k: v for k, v in f.items() if k != "snapshot"}
                                for n, f in found.items()
                            },
                        }
                    ),
                    flush=True,
                )
                if args.top:
                    # With --frames > 1, grouped by the whole kept traceback: who called
                    # the allocating line, innermost first.
                    group = "traceback" if args.frames > 1 else "lineno"
                    grown = tracemalloc.Snapshot.load(str(high["snapshot"])).compare_to(
                        tracemalloc.Snapshot.load(str(low["snapshot"])), group
                    )
                    for stat in grown[: args.top]:
                        share = stat.size_diff / (sizes[-1] - sizes[0])
                        frames = list(reversed(stat.traceback))
                        print(f"    {share:>9.0f} B/check  {frames[0]}")
                        for frame in frames[1:]:
                            print(f"                      {frame}")
        finally:
            target.terminate()
            target.wait(timeout=10)
            if redis is not None:
                redis.terminate()
                redis.wait(timeout=10)
            if cluster is not None:
                cluster.destroy()
    print(
        "\n| check type | traced bytes per check | RSS per check (tracemalloc on) "
        f"| failing at {sizes[0]} / {sizes[-1]} |"
    )
    print("|---|---|---|---|")
    for kind, per_check, rss, found in rows:
        failing = "/".join(str(found[n]["failing"]) for n in sizes)
        print(f"| {kind} | {per_check / 1024:.1f} KB | {rss / 1024:.1f} KB | {failing} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default="http,tcp,postgres,redis")
    parser.add_argument("--sizes", default="50,250")
    parser.add_argument("--runs", type=int, default=3, help="results each check has first")
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames kept")
    parser.add_argument("--top", type=int, default=0, help="allocation sites to list")
    parser.add_argument(
        "--default-config", action="store_true", help="config/probe.yaml vs its import floor"
    )
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before reading RSS")
    parser.add_argument("--window", type=int, default=10, help="RSS readings, one a second")
    parsed = parser.parse_args()
    if parsed.default_config:
        default_config(parsed)
    else:
        main(parsed)
