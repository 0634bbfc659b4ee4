"""Cost per check run at 100, 1,000 and 3,000 http checks, beside Prometheus's blackbox_exporter.

Run by hand (never in the test suite); needs Debian's `prometheus-blackbox-exporter`:

    .venv/bin/python bench/bench_scale.py [--sizes 100,1000,3000] [--window 30] [--interval 10]

Both tools probe the same local HTTP target (a child process on CPU 1) at the same rate:
probe with N `http` checks, blackbox_exporter driven by this script the way Prometheus
drives it, one `/probe` request per target per interval, phases spread over the interval.
Each measured process runs alone on CPU 0. CPU is utime + stime from /proc over the
window, after one interval of warm-up; probe's RSS is the median of one reading a second
over the window; runs are counted at the target, so they are the
requests that were really made. Everything listens on 127.0.0.1 and every loop is bounded.
The goals printed beside the table are issues 18's and 28's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / ".venv" / "bin" / "probe"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
TICKS = os.sysconf("SC_CLK_TCK")
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# `--isolate`: the agent without the status page's periodic re-render (a what-if that
# separates its cost, which grows with checks x days shown, from the core path's).
ISOLATED = (
    "import sys; import probe.web.status as page; page.StatusSite.refresh = lambda self: None; "
    "from probe.cli.main import main; sys.argv[0] = 'probe'; sys.exit(main())"
)

TARGET = r"""
import sys, time, json
from collections import defaultdict
from aiohttp import web
seen = defaultdict(list)
async def hit(request):
    seen[request.match_info["tool"] + "/" + request.match_info["i"]].append(time.monotonic())
    return web.Response(text="ok")
async def stats(request):
    tool = request.query["tool"]
    since, until = float(request.query["since"]), float(request.query["until"])
    runs, gaps = 0, []
    for key, times in seen.items():
        if not key.startswith(tool + "/"):
            continue
        inside = [t for t in times if since <= t <= until]
        runs += len(inside)
        gaps += [b - a for a, b in zip(inside, inside[1:])]
    return web.json_response({"runs": runs, "gaps": len(gaps),
                              "mean_interval": sum(gaps) / len(gaps) if gaps else 0.0})
async def now(request):
    return web.json_response({"now": time.monotonic()})
app = web.Application()
app.router.add_get("/stats", stats)
app.router.add_get("/now", now)
app.router.add_get("/{tool}/{i}", hit)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, backlog=4096)
"""


@dataclass
class Row:
    tool: str
    checks: int
    cpu_share: float = 0.0  # of one core
    cpu_per_run_ms: float = 0.0
    rss_mb: float = 0.0
    runs: int = 0
    expected: int = 0
    mean_interval: float = 0.0
    failures: int = 0
    live_p99_ms: float | None = None
    metrics_hold_ms: float | None = None
    loaded_live_p99_ms: float | None = None  # under back-to-back scrapes, /health, /status
    sigterm_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_http(http: aiohttp.ClientSession, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with http.get(url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


async def target_now(http: aiohttp.ClientSession, target: int) -> float:
    async with http.get(f"http://127.0.0.1:{target}/now") as response:
        return float((await response.json())["now"])


async def target_stats(
    http: aiohttp.ClientSession, target: int, tool: str, since: float, until: float
) -> dict[str, float]:
    query = {"tool": tool, "since": str(since), "until": str(until)}
    async with http.get(f"http://127.0.0.1:{target}/stats", params=query) as response:
        found: dict[str, float] = await response.json()
        return found


async def sample_live(
    http: aiohttp.ClientSession, url: str, until: float, every: float = 0.2
) -> list[float]:
    latencies = []
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
                await response.read()
            latencies.append(time.monotonic() - started)
        except (aiohttp.ClientError, TimeoutError):
            latencies.append(30.0)
        await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))
    return latencies


async def sample_rss(pid: int, until: float) -> list[float]:
    """RSS once a second over the window: one reading catches whatever was in flight."""
    found = []
    while time.monotonic() < until:
        found.append(rss_mb(pid))
        await asyncio.sleep(1.0)
    return found or [rss_mb(pid)]


def raw_session() -> aiohttp.ClientSession:
    """For the load beside the /live sampler: the bytes as sent (gzip for /metrics, as
    Prometheus asks). Decompressing 21 MB of scrape in this process's loop delayed the
    sampler's own reads: 18-36 ms of `/metrics hold` at 3,000 checks that were this
    script's, against 10-15 ms with the same agent and a raw read."""
    return aiohttp.ClientSession(auto_decompress=False)


SCRAPE = {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"}


async def metrics_hold(http: aiohttp.ClientSession, port: int) -> float:
    """Longest /live answer while one OpenMetrics scrape is served: the loop's hold."""
    base = f"http://127.0.0.1:{port}"
    done = asyncio.Event()
    longest = 0.0

    async def scrape() -> None:
        async with raw_session() as raw, raw.get(f"{base}/metrics", headers=SCRAPE) as response:
            await response.read()
        done.set()

    task = asyncio.create_task(scrape())
    while not done.is_set():
        started = time.monotonic()
        async with http.get(f"{base}/live") as response:
            await response.read()
        longest = max(longest, time.monotonic() - started)
        await asyncio.sleep(0.005)
    await task
    return longest


async def live_under_scrapes(http: aiohttp.ClientSession, port: int, seconds: float) -> list[float]:
    """/live latencies while /metrics is scraped back to back and /health and /status are
    read twice a second: a second Prometheus, a dashboard refresh, a status page left open
    and a curl loop at once (issue 28)."""
    base = f"http://127.0.0.1:{port}"
    until = time.monotonic() + seconds

    async def scrapes(raw: aiohttp.ClientSession) -> None:
        while time.monotonic() < until:
            async with raw.get(f"{base}/metrics", headers=SCRAPE) as response:
                await response.read()

    async def reads(raw: aiohttp.ClientSession, path: str) -> None:
        while time.monotonic() < until:
            async with raw.get(f"{base}{path}") as response:
                await response.read()
            await asyncio.sleep(0.5)

    async with raw_session() as raw:
        loaders = [asyncio.create_task(scrapes(raw))]
        loaders += [asyncio.create_task(reads(raw, path)) for path in ("/health", "/status")]
        live = await sample_live(http, f"{base}/live", until, every=0.05)
        await asyncio.gather(*loaders)
    return live


async def failed_runs(http: aiohttp.ClientSession, port: int) -> int:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("probe_check_runs_total{") and 'status="fail"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def stop(process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return float("inf")
    return time.monotonic() - started


def probe_config(checks: int, target: int, port: int, interval: int) -> str:
    lines = [
        # History is a feature with costs of its own; this bench measures checks ->
        # scheduler -> store -> endpoints, metrics and the status page (read only in the
        # loaded window: a page nobody reads costs nothing).
        "agent: { name: bench, version: bench, history: 'off', status_page: 'public',",
        f"         listen: '127.0.0.1:{port}' }}",
        f"defaults: {{ interval: {interval}s, timeout: 2s }}",
        "checks:",
    ]
    lines += [
        f"  - {{ name: t-{i:04d}, type: http, url: 'http://127.0.0.1:{target}/p/{i}' }}"
        for i in range(checks)
    ]
    return "\n".join(lines) + "\n"


BLACKBOX_CONFIG = """
modules:
  http_2xx:
    prober: http
    timeout: 2s
    http: { preferred_ip_protocol: ip4 }
"""


async def measure_probe(
    http: aiohttp.ClientSession, checks: int, target: int, args: argparse.Namespace, work: Path
) -> Row:
    row = Row("probe", checks, expected=checks * args.window // args.interval)
    port = free_port()
    config = work / f"probe-{checks}.yaml"
    config.write_text(probe_config(checks, target, port, args.interval))
    command = [str(PROBE)] if not args.isolate else [sys.executable, "-c", ISOLATED]
    with (work / f"probe-{checks}.log").open("wb") as log:
        process = subprocess.Popen(
            ["taskset", "-c", "0", *command, "run", "-c", str(config)],
            stdout=log,
            stderr=log,
        )
    try:
        await wait_http(http, f"http://127.0.0.1:{port}/live", timeout=300)
        await asyncio.sleep(args.interval + 2)  # first runs are spread over one interval
        before_fail = await failed_runs(http, port)
        since, cpu0, wall0 = (
            await target_now(http, target),
            cpu_seconds(process.pid),
            time.monotonic(),
        )
        rss = asyncio.create_task(sample_rss(process.pid, wall0 + args.window))
        live = await sample_live(http, f"http://127.0.0.1:{port}/live", wall0 + args.window)
        until, cpu1, wall1 = (
            await target_now(http, target),
            cpu_seconds(process.pid),
            time.monotonic(),
        )
        row.rss_mb = statistics.median(await rss)
        counted = await target_stats(http, target, "p", since, until)
        row.failures = await failed_runs(http, port) - before_fail
        row.metrics_hold_ms = 1000 * max([await metrics_hold(http, port) for _ in range(3)])
        loaded = await live_under_scrapes(http, port, args.loaded)
        row.loaded_live_p99_ms = 1000 * statistics.quantiles(loaded, n=100)[98]
        row.live_p99_ms = 1000 * statistics.quantiles(live, n=100)[98] if len(live) > 2 else None
        fill(row, cpu1 - cpu0, wall1 - wall0, counted)
    finally:
        row.sigterm_s = stop(process)
    return row


async def measure_blackbox(
    http: aiohttp.ClientSession, checks: int, target: int, args: argparse.Namespace, work: Path
) -> Row:
    row = Row("blackbox", checks, expected=checks * args.window // args.interval)
    port = free_port()
    config = work / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    with (work / f"blackbox-{checks}.log").open("wb") as log:
        process = subprocess.Popen(
            [
                "taskset", "-c", "0", BLACKBOX, f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
            ],
            stdout=log, stderr=log,
        )  # fmt: skip
    failures = 0
    try:
        await wait_http(http, f"http://127.0.0.1:{port}/metrics")
        limit = asyncio.Semaphore(512)

        async def probe_once(i: int) -> None:
            nonlocal failures
            url = f"http://127.0.0.1:{port}/probe"
            query = {"module": "http_2xx", "target": f"http://127.0.0.1:{target}/b/{i}"}
            async with limit:
                try:
                    async with http.get(url, params=query) as response:
                        ok = "\nprobe_success 1" in await response.text()
                except aiohttp.ClientError:
                    ok = False
            failures += not ok

        async def drive(until: float) -> None:
            # As Prometheus does: each target on its own fixed offset within the interval.
            start, tasks = time.monotonic(), set()
            k = 0
            while True:
                due = start + k * args.interval / checks
                if due >= until:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(probe_once(k % checks))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                k += 1
            await asyncio.gather(*tasks)

        warm_until = time.monotonic() + args.interval + 2 + args.window
        driver = asyncio.create_task(drive(warm_until))
        await asyncio.sleep(args.interval + 2)
        failures = 0
        since, cpu0, wall0 = (
            await target_now(http, target),
            cpu_seconds(process.pid),
            time.monotonic(),
        )
        await asyncio.sleep(args.window)
        until, cpu1, wall1 = (
            await target_now(http, target),
            cpu_seconds(process.pid),
            time.monotonic(),
        )
        row.rss_mb = rss_mb(process.pid)
        await driver
        row.failures = failures
        counted = await target_stats(http, target, "b", since, until)
        fill(row, cpu1 - cpu0, wall1 - wall0, counted)
    finally:
        row.sigterm_s = stop(process)
    return row


def fill(row: Row, cpu: float, wall: float, counted: dict[str, float]) -> None:
    row.cpu_share = cpu / wall
    row.runs = int(counted["runs"])
    row.mean_interval = counted["mean_interval"]
    row.cpu_per_run_ms = 1000 * cpu / row.runs if row.runs else float("inf")


async def idle_floor(http: aiohttp.ClientSession, target: int, work: Path) -> float:
    """RSS of the agent with one check: what imports and the loop cost before any scale."""
    port = free_port()
    config = work / "probe-floor.yaml"
    config.write_text(probe_config(1, target, port, 10))
    process = subprocess.Popen(
        [str(PROBE), "run", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await wait_http(http, f"http://127.0.0.1:{port}/live")
        await asyncio.sleep(3)
        return rss_mb(process.pid)
    finally:
        stop(process)


def print_table(rows: list[Row], floor: float, interval: int) -> None:
    print(f"\nidle RSS floor (probe, 1 check): {floor:.1f} MB; interval {interval}s")
    head = (
        "| checks | tool | CPU of a core | CPU per run | RSS | runs made | failures "
        "| mean interval | /live p99 | /live p99 under scrapes | /metrics hold | SIGTERM |"
    )
    print(head)
    print("|---" * 12 + "|")
    for r in rows:
        live = f"{r.live_p99_ms:.1f} ms" if r.live_p99_ms is not None else "-"
        hold = f"{r.metrics_hold_ms:.0f} ms" if r.metrics_hold_ms is not None else "-"
        loaded = f"{r.loaded_live_p99_ms:.1f} ms" if r.loaded_live_p99_ms is not None else "-"
        made = 100 * r.runs / r.expected if r.expected else 0
        print(
            f"| {r.checks:,} | {r.tool} | {100 * r.cpu_share:.1f}% | {r.cpu_per_run_ms:.2f} ms "
            f"| {r.rss_mb:.0f} MB | {r.runs:,} of {r.expected:,} ({made:.0f}%) | {r.failures} "
            f"| {r.mean_interval:.3f} s | {live} | {loaded} | {hold} | {r.sigterm_s:.1f} s |"
        )
    probes = {r.checks: r for r in rows if r.tool == "probe"}
    blackbox = {r.checks: r for r in rows if r.tool == "blackbox"}
    print("\ngoals (issues 18 and 28):")
    for n, r in sorted(probes.items()):
        if n in blackbox:
            ratio = r.cpu_per_run_ms / blackbox[n].cpu_per_run_ms
            print(f"  CPU per run probe / blackbox at {n:,}: {ratio:.2f}x (goal <= 1x)")
        loaded_ms = r.loaded_live_p99_ms if r.loaded_live_p99_ms is not None else float("nan")
        hold_ms = r.metrics_hold_ms if r.metrics_hold_ms is not None else float("nan")
        print(
            f"  at {n:,}: runs {100 * r.runs / max(r.expected, 1):.1f}%, failures {r.failures}, "
            f"mean interval {100 * (r.mean_interval / interval - 1):+.2f}% (goal within 1%), "
            f"RSS {r.rss_mb:.0f} MB (goal < 85 MB at 3,000), /metrics hold {hold_ms:.0f} ms "
            f"and /live p99 under scrapes {loaded_ms:.1f} ms (goals < 20 ms), "
            f"SIGTERM {r.sigterm_s:.1f} s (goal < 10 s)"
        )


async def main(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {1})  # the driver and the target stay off the measured CPU
    sizes = [int(s) for s in args.sizes.split(",")]
    target = free_port()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        server = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, "-c", TARGET, str(target)],
            stdout=subprocess.DEVNULL,
        )
        connector = aiohttp.TCPConnector(limit=0)
        try:
            async with aiohttp.ClientSession(connector=connector) as http:
                await wait_http(http, f"http://127.0.0.1:{target}/now")
                floor = await idle_floor(http, target, work)
                for n in sizes:
                    for tool in args.tools.split(","):
                        measure = measure_probe if tool == "probe" else measure_blackbox
                        row = await measure(http, n, target, args, work)
                        rows.append(row)
                        print(json.dumps(row.__dict__), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print_table(rows, floor, args.interval)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,3000")
    parser.add_argument("--tools", default="probe,blackbox")
    parser.add_argument("--window", type=int, default=30, help="seconds measured per row")
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument(
        "--loaded", type=int, default=15, help="seconds of /live sampling under scrapes"
    )
    parser.add_argument("--isolate", action="store_true", help="without the status page refresh")
    asyncio.run(main(parser.parse_args()))
