"""Pieces for the hostile-environment tests: the real agent in a child process, a client
that holds idle or slowloris connections, and a poller that reads endpoints as a kubelet
does (a new connection per probe, a one-second deadline).

Run as a module, it is the connection holder:
`python -m tests.hostile hold HOST PORT COUNT SECONDS idle|slowloris [GAP]`; it prints
one JSON line of what it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.cli_helpers import REPO, cli_env

# A kubelet's default timeoutSeconds is 1s; twice that here, because the attack itself (1,600
# connections from this process) shares the two cores. Unfixed, most probes got no answer.
PROBE_TIMEOUT = 2.0


@dataclass
class AgentProcess:
    """`probe run` in a child process, its log in a file, stopped with SIGTERM."""

    config: Path
    port: int
    log_path: Path
    prefix: Sequence[str] = ()  # e.g. `sh -c 'ulimit -n 1024; exec "$@"' sh`
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        command = [*self.prefix, sys.executable, "-m", "probe", "run", "-c", str(self.config)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=REPO,
                env=cli_env(self.env),
                start_new_session=True,
            )
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    async def wait_until_serving(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"probe exited: {self.log_lines()[-5:]}")
            if (await probe_get(self.port, "/live"))[0] == 200:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"probe not serving after {timeout}s: {self.log_lines()[-5:]}")

    async def wait_until_ready(self, timeout: float = 15.0) -> None:
        """Serving, and the critical checks have their first results (/ready is 503 before)."""
        await self.wait_until_serving(timeout)
        deadline = time.monotonic() + timeout
        while (await probe_get(self.port, "/ready"))[0] != 200:
            if time.monotonic() > deadline:
                raise AssertionError(f"/ready not 200 after {timeout}s: {self.log_lines()[-5:]}")
            await asyncio.sleep(0.1)

    def stop(self) -> int:
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.poll() is None:
            # The whole session: a wrapper such as `unshare` or `sh` goes with the agent.
            os.killpg(process.pid, signal.SIGTERM)
        try:
            return process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait(5)


async def probe_get(port: int, path: str, timeout: float = PROBE_TIMEOUT) -> tuple[int, float]:
    """(status, seconds) of one GET on a fresh connection; status 0 when it got no answer
    within `timeout`, as curl's `000`."""
    started = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
            writer.write(request.encode())
            status_line = await reader.readline()
            await reader.read()
        status = int(status_line.split()[1]) if status_line.startswith(b"HTTP/") else 0
    except (OSError, TimeoutError, ValueError, IndexError):
        status = 0
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return status, time.monotonic() - started


@dataclass
class Poll:
    """What a kubelet polling `paths` saw: (path, status, seconds) per probe."""

    samples: list[tuple[str, int, float]] = field(default_factory=list)

    async def run(self, port: int, paths: Sequence[str], seconds: float, gap: float) -> Poll:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            results = await asyncio.gather(*(probe_get(port, p) for p in paths))
            self.samples += [(p, s, t) for p, (s, t) in zip(paths, results, strict=True)]
            await asyncio.sleep(gap)
        return self

    def failures(self) -> list[tuple[str, int, float]]:
        return [s for s in self.samples if s[1] != 200 or s[2] > PROBE_TIMEOUT]

    def summary(self) -> str:
        worst = max((t for _, _, t in self.samples), default=0.0)
        return (
            f"{len(self.samples) - len(self.failures())}/{len(self.samples)} probes answered "
            f"200 within {PROBE_TIMEOUT:g}s, slowest {worst:.3f}s"
        )


def hold_connections(
    port: int, count: int, seconds: float, mode: str, gap: float = 2.0
) -> subprocess.Popen[str]:
    """Start the connection holder in its own process, so its work never delays the poll."""
    counts = [str(count), str(seconds), mode, str(gap)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.hostile", "hold", "127.0.0.1", str(port), *counts],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=cli_env(),
    )


def held_report(holder: subprocess.Popen[str]) -> dict[str, float]:
    out, err = holder.communicate(timeout=30)
    assert holder.returncode == 0, err
    report: dict[str, float] = json.loads(out)
    return report


# ---------------------------------------------------------------- the holder itself


async def _hold_one(host: str, port: int, seconds: float, mode: str, gap: float) -> float | None:
    """Seconds until the server closed the connection; None if it never connected.
    `seconds` + 1 when the server still held it at the end."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, TimeoutError):
        return None
    opened = time.monotonic()
    trickle = asyncio.create_task(_trickle(writer, gap)) if mode == "slowloris" else None
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
        return time.monotonic() - opened
    except TimeoutError:
        return seconds + 1
    except OSError:
        return time.monotonic() - opened
    finally:
        if trickle is not None:
            trickle.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await trickle
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _trickle(writer: asyncio.StreamWriter, gap: float) -> None:
    """A request whose headers never end: one more header line every `gap` seconds."""
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    while True:
        await writer.drain()
        await asyncio.sleep(gap)
        writer.write(b"X-a: b\r\n")


async def _hold(host: str, port: int, count: int, seconds: float, mode: str, gap: float) -> None:
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_hold_one(host, port, seconds, mode, gap)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    lifetimes = await asyncio.gather(*tasks)
    connected = [t for t in lifetimes if t is not None]
    closed = [t for t in connected if t <= seconds]
    report = {
        "attempted": count,
        "connected": len(connected),
        "closed_by_server": len(closed),
        "longest_closed_after": round(max(closed, default=0.0), 2),
        "still_open_at_end": len(connected) - len(closed),
    }
    print(json.dumps(report))


def main(argv: list[str]) -> None:
    _, host, port, count, seconds, mode, *rest = argv
    gap = float(rest[0]) if rest else 2.0
    # The holder needs a descriptor per connection, whatever the agent's limit is.
    with contextlib.suppress(ValueError, OSError):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_hold(host, int(port), int(count), float(seconds), mode, gap))


if __name__ == "__main__" and sys.argv[1:2] == ["hold"]:
    main(sys.argv[1:])
