"""Start-up cost of `probe check` and `probe ping`, next to their floors (run by hand).

    .venv/bin/python bench/bench_cli.py [--runs 10] [--source DIR]

Every command runs as the image runs it: from a regular install (probe's modules compiled
to .pyc, no import hook), not through `make install`'s editable install, whose import
finder costs every start (`python -c pass` included) about 10 ms. To get that, the bench
makes a throw-away virtualenv whose .pth puts this interpreter's site-packages (probe's
dependencies) and probe's source (`--source`, default this checkout) on sys.path, and
runs the console script `probe` as pip writes it. PYTHONDONTWRITEBYTECODE is dropped so
the first, discarded run compiles probe as `pip install` would. `--source DIR` measures
another tree, e.g. `git archive COMMIT probe | tar -x -C DIR` for a before/after.

`probe check` runs two configs with local targets only (this machine has no internet):
one shaped like the default config (PostgreSQL on 127.0.0.1:5432, Redis on 6379, only
read, HTTP against a server this script starts), and one `tcp` check (issue 28's case).
The floor of each is `python -c 'import ...'` of what it needs. `import pydantic` alone
loads almost nothing (pydantic 2 imports lazily), so the `tcp` case is printed against
the issue's floor (`import pydantic, yaml, asyncio`), one with `BaseModel`, which any
config validated by pydantic models has to load, and one that validates one small model.
`probe ping` is compared with `python -c pass` and `curl -s`. Prints medians of wall time,
of the child's CPU time (user + system: steadier than wall time on a shared machine) and
of start-up (wall time less the checks' own run), and the ratios of all three.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from probe.core.units import parse_duration

REPO = Path(__file__).resolve().parent.parent

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

# Issue 28's case: one check, of the cheapest type.
TCP_CONFIG = """
agent: { version: bench }
checks:
  - { name: db_port, type: tcp, host: 127.0.0.1, port: 5432 }
"""

# What the default-like config needs: its drivers and the config libraries.
FLOOR_IMPORTS = (
    "import asyncio, asyncpg, redis.asyncio, aiohttp, psutil, yaml; from pydantic import BaseModel"
)
TCP_FLOOR_ISSUE = "import pydantic, yaml, asyncio"
TCP_FLOOR_MODEL = "import yaml, asyncio; from pydantic import BaseModel"
# The least a config validated by pydantic does: one model with a bound and a secret. Its
# first validator loads pydantic.types, annotated_types and the plugin loader (with
# importlib.metadata), whatever the model.
TCP_FLOOR_ONE_MODEL = (
    "import yaml, asyncio\n"
    "from pydantic import BaseModel, Field, SecretStr\n"
    "class Tcp(BaseModel):\n"
    "    port: int = Field(ge=1, le=65535)\n"
    "    token: SecretStr = SecretStr('')\n"
    "Tcp(port=5432)"
)

# What pip writes as the `probe` console script (pip 26), so `probe ping` is timed as
# Docker's HEALTHCHECK runs it.
CONSOLE_SCRIPT = """import sys
from probe.cli.main import main
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit(main())
"""


# The last line of `probe check`'s text output: `healthy: 1 check, 1 pass, ... in 212ms`.
SUMMARY = re.compile(r" in ([0-9.]+(?:ms|s))\s*$")


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


class Installed:
    """A virtualenv that sees probe and its dependencies the way a regular install does."""

    def __init__(self, root: Path, source: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        self.python = str(root / "bin" / "python")
        site = subprocess.run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # Plain paths: the .pth files of the dependencies' site-packages (the editable
        # finder among them) are not run, as they are not in the image.
        deps = sysconfig.get_paths()["purelib"]
        Path(site, "probe-bench.pth").write_text(f"{source}\n{deps}\n")
        self.script = str(root / "bin" / "probe")
        Path(self.script).write_text(CONSOLE_SCRIPT)


class Command:
    """One command line, its runs' wall and CPU times and, for `probe check`, how long its
    checks took by its own summary line (`... in 212ms`): the system check waits 200 ms
    for a CPU window, which is the check's work, not start-up."""

    def __init__(self, name: str, argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
        self.name, self.argv, self.ok = name, argv, ok
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.checks: list[float] = []

    def run(self, env: dict[str, str], cwd: str, keep: bool) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(self.argv, env=env, cwd=cwd, capture_output=True, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in self.ok:
            sys.exit(f"{self.name} exited {done.returncode}: {done.stdout!r} {done.stderr!r}")
        if keep:  # the first run compiles probe and warms the page cache
            self.walls.append(wall)
            self.cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            found = SUMMARY.search(done.stdout.decode())
            if found:
                self.checks.append(parse_duration(found.group(1)))

    def wall(self) -> float:
        return statistics.median(self.walls)

    def cpu(self) -> float:
        return statistics.median(self.cpus)

    def start_up(self) -> float:
        """Wall time less what the checks took, run by run."""
        if not self.checks:
            return self.wall()
        return statistics.median(w - c for w, c in zip(self.walls, self.checks, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--source", type=Path, default=REPO, help="the tree holding probe/")
    options = parser.parse_args()
    runs: int = options.runs
    source: Path = options.source.resolve()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "PROBE_CONFIG")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["APP_URL"] = base

    with tempfile.TemporaryDirectory() as tmp:
        installed = Installed(Path(tmp) / "venv", source)
        py, script = installed.python, installed.script
        config = Path(tmp) / "bench.yaml"
        config.write_text(BENCH_CONFIG)
        tcp = Path(tmp) / "tcp.yaml"
        tcp.write_text(TCP_CONFIG)
        commands = [
            Command("python -c pass", [py, "-c", "pass"]),
            Command("import floor", [py, "-c", FLOOR_IMPORTS]),
            Command("probe check", [py, script, "check", "-c", str(config)], (0, 1)),
            Command("tcp floor (issue)", [py, "-c", TCP_FLOOR_ISSUE]),
            Command("tcp floor (model)", [py, "-c", TCP_FLOOR_MODEL]),
            Command("tcp floor (one model)", [py, "-c", TCP_FLOOR_ONE_MODEL]),
            Command("probe check tcp", [py, script, "check", "-c", str(tcp)], (0, 1, 2)),
            Command("probe ping", [py, script, "ping", f"{base}/live"]),
            Command("python -m probe ping", [py, "-m", "probe", "ping", f"{base}/live"]),
        ]
        curl = shutil.which("curl")
        if curl:
            commands.append(Command("curl -s", [curl, "-s", "-o", "/dev/null", f"{base}/live"]))
        # Round by round, so a burst of load on the shared machine hits every command.
        for round_ in range(runs + 1):
            for command in commands:
                command.run(env, tmp, keep=round_ > 0)
    server.shutdown()

    by_name = {c.name: c for c in commands}
    print(f"probe from {source}; median of {runs} runs")
    print(f"  {'':<24} {'wall':>9} {'cpu':>9} {'start-up':>9}")
    for c in commands:
        print(
            f"  {c.name:<24} {c.wall() * 1000:6.1f} ms {c.cpu() * 1000:6.1f} ms"
            f" {c.start_up() * 1000:6.1f} ms"
        )

    def ratio(top: str, floor: str) -> None:
        a, b = by_name[top], by_name[floor]
        print(
            f"  {top + ' / ' + floor:<44} {a.wall() / b.wall():5.2f}x {a.cpu() / b.cpu():5.2f}x"
            f" {a.start_up() / b.start_up():5.2f}x"
        )

    print(f"  {'ratios':<44} {'wall':>6} {'cpu':>6} {'start-up':>6}")
    ratio("probe check", "import floor")
    ratio("probe check tcp", "tcp floor (issue)")
    ratio("probe check tcp", "tcp floor (model)")
    ratio("probe check tcp", "tcp floor (one model)")
    ratio("probe ping", "python -c pass")
    ratio("python -m probe ping", "python -c pass")
    if "curl -s" in by_name:
        ratio("probe ping", "curl -s")
    print("  start-up: wall time less the checks' own run time (probe check's summary line)")
    print(f"  import floor: {FLOOR_IMPORTS}")
    print(f"  tcp floor (issue): {TCP_FLOOR_ISSUE}")
    print(f"  tcp floor (model): {TCP_FLOOR_MODEL}")
    print("  tcp floor (one model): " + TCP_FLOOR_ONE_MODEL.replace("\n", "; "))


if __name__ == "__main__":
    main()
