"""In the running agent, `postgres` checks of one DSN and `redis` checks of one URL share one
server connection, a reload swaps it for a fresh one without leaving the old one open, and
a stop leaves none behind."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import redis as redis_sync

from tests.conftest import free_port
from tests.hostile import AgentProcess
from tests.support import settled, until

DB = 7  # the agent's Redis db: its connections are told apart from the test's by it


async def pg_pids(dsn: str) -> set[int]:
    """Sessions named `probe` in our database."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE application_name = 'probe' AND datname = current_database()"
        )
        return {row["pid"] for row in rows}
    finally:
        await conn.close()


def redis_ids(admin: redis_sync.Redis) -> set[str]:
    return {c["id"] for c in admin.client_list() if c.get("db") == str(DB)}


async def test_checks_share_one_connection_per_target_across_a_reload_and_leave_none(
    tmp_path: Path, pg_dsn: str, redis_server: tuple[str, int]
) -> None:
    host, port = redis_server
    admin = redis_sync.Redis(host=host, port=port, db=0, decode_responses=True)
    earlier_pg = await pg_pids(pg_dsn)
    earlier_redis = redis_ids(admin)

    async def agent_pg() -> int:
        return len(await pg_pids(pg_dsn) - earlier_pg)

    async def agent_redis() -> int:
        return len(redis_ids(admin) - earlier_redis)

    listen = free_port()
    checks = [f"  - {{ name: db{i}, type: postgres, dsn: '{pg_dsn}' }}" for i in range(3)]
    url = f"redis://{host}:{port}/{DB}"
    checks += [f"  - {{ name: cache{i}, type: redis, url: '{url}' }}" for i in range(3)]
    config = tmp_path / "probe.yaml"
    config.write_text(
        f'agent: {{ name: shared, listen: "127.0.0.1:{listen}", history: "off" }}\n'
        "defaults: { interval: 1s, timeout: 900ms }\n"
        "checks:\n" + "\n".join(checks) + "\n"
    )
    agent = AgentProcess(config, listen, tmp_path / "agent.log").start()
    try:
        await agent.wait_until_serving()
        await asyncio.sleep(2.5)  # every check has run at least once
        assert await settled(agent_pg, 1) == 1
        assert await settled(agent_redis, 1) == 1

        assert agent.process is not None
        agent.process.send_signal(signal.SIGHUP)
        await until(lambda: any("config reloaded" in line for line in agent.log_lines()))
        await asyncio.sleep(2.5)  # the new checks have run
        assert await settled(agent_pg, 1) == 1
        assert await settled(agent_redis, 1) == 1
    finally:
        assert agent.stop() == 0
    assert await settled(agent_pg, 0) == 0
    assert await settled(agent_redis, 0) == 0
    admin.close()
