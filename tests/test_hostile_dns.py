"""F3: a resolver that stops answering must fail the external checks only.

The agent runs in its own mount namespace (`unshare -m`) where /etc/resolv.conf names a
local UDP socket that never answers and /etc/hosts names `db.internal`, as Docker's or
CoreDNS's cluster zone would, while the test kills its PostgreSQL and Redis connections
every two seconds, as a pooler's idle timeout or a failover does, so they reconnect and
look `db.internal` up again.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.conftest import free_port
from tests.hostile import AgentProcess, probe_get

EXTERNAL_MEMBERS = 8


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    return done.returncode == 0


@pytest.fixture
def silent_resolver() -> Iterator[str]:
    """A loopback address where a UDP socket takes DNS queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(20):
        host = f"127.53.{random.randint(1, 254)}.{random.randint(1, 254)}"
        try:
            sock.bind((host, 53))
            break
        except OSError:
            continue
    else:
        sock.close()
        pytest.skip("no free loopback address for a silent resolver on port 53")
    yield host
    sock.close()


def namespace_files(tmp_path: Path, resolver: str) -> tuple[Path, Path]:
    resolv = tmp_path / "resolv.conf"
    # glibc's defaults: each hung lookup holds its thread for 5s x 2 attempts.
    resolv.write_text(f"nameserver {resolver}\noptions timeout:5 attempts:2\n")
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + "\n127.0.0.1 db.internal\n")
    return resolv, hosts


def agent_config(tmp_path: Path, port: int, pg_dsn: str, redis_port: int) -> Path:
    database = urlsplit(pg_dsn).path.lstrip("/")
    members = "\n".join(
        f"      - {{ name: api{i}, type: http, url: 'https://api{i}.example.net/' }}"
        for i in range(EXTERNAL_MEMBERS)
    )
    path = tmp_path / "probe.yaml"
    path.write_text(
        f"""
agent: {{ name: f3, listen: "127.0.0.1:{port}" }}
defaults: {{ interval: 5s, timeout: 3s }}
checks:
  - name: database
    type: postgres
    dsn: postgresql://postgres@db.internal:5432/{database}
    critical: true
  - name: redis
    type: redis
    url: redis://db.internal:{redis_port}/0
    critical: true
  - name: external_services
    type: group
    interval: 8s
    timeout: 5s
    checks:
{members}
"""
    )
    return path


async def force_reconnects(pg_dsn: str, redis_port: int) -> None:
    """What a pooler's idle timeout or a failover does to the agent's connections."""
    database = urlsplit(pg_dsn).path.lstrip("/")
    conn = await asyncpg.connect(pg_dsn, timeout=5)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'probe' AND datname = $1",
            database,
        )
    finally:
        await conn.close()
    client = aioredis.Redis(host="127.0.0.1", port=redis_port)
    try:
        await client.client_kill_filter(_type="normal", skipme=True)
    finally:
        await client.aclose()


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -m` (root or CAP_SYS_ADMIN)")
async def test_dns_outage_leaves_local_critical_checks_and_ready_alone(
    tmp_path: Path,
    silent_resolver: str,
    pg_dsn: str,
    redis_server: tuple[str, int],
) -> None:
    resolv, hosts = namespace_files(tmp_path, silent_resolver)
    in_namespace = (
        "unshare",
        "-m",
        "sh",
        "-c",
        f'mount --bind {resolv} /etc/resolv.conf && mount --bind {hosts} /etc/hosts && exec "$@"',
        "sh",
    )
    port = free_port()
    config = agent_config(tmp_path, port, pg_dsn, redis_server[1])
    agent = AgentProcess(config, port, tmp_path / "agent.log", in_namespace).start()
    try:
        await agent.wait_until_serving()
        ready = []
        for second in range(12):
            if second % 2 == 0:
                await force_reconnects(pg_dsn, redis_server[1])
            for _ in range(4):
                ready.append((await probe_get(port, "/ready"))[0])
                await asyncio.sleep(0.25)
        first_ready = ready.index(200) if 200 in ready else len(ready)
        after_first = ready[first_ready:]
        print(
            f"\nF3: /ready over {len(ready)} probes: {dict(Counter(ready))}; first 200 at"
            f" probe {first_ready}, then {after_first.count(200)}/{len(after_first)} x 200"
        )
        assert first_ready < 8  # ready within two seconds of serving
        assert set(after_first) == {200}
    finally:
        stopping = time.monotonic()
        assert agent.stop() == 0
    # Lookups still hung on the dead resolver must not hold up the exit after SIGTERM.
    assert time.monotonic() - stopping < 5
