"""The asyncpg pool `postgres` checks share: one per DSN, timeout and query (see shared.py).

A check's custom query may leave session state behind (`SET search_path`, a temporary
table), and the pool resets nothing on release (a second round trip per run): so only
checks that run the same query share a pool, and the statistics statement, which every
check runs, reads nothing a session setting could change. Up to `MAX_CONNECTIONS`
connections are opened, and only while runs overlap: runs of one check never do, and the
scheduler spreads the checks of one interval over it, so sequential runs reuse one
connection (asyncpg's pool hands out the most recently released one).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from probe.checks.shared import SharedClients

# Connections one pool may open: enough that a run whose cancelled statement is still
# being acknowledged, or one slow custom query, does not make the other checks wait.
MAX_CONNECTIONS = 4
DRIVER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

PoolKey = tuple[str, float, str]  # (dsn, timeout, query)


def statement_timeout(timeout: float) -> float:
    """asyncpg's command_timeout: a little under the run's deadline, so that asyncpg's own
    timer fires first and cancels the statement on the server with its connection intact."""
    return timeout - min(timeout * 0.1, 0.25)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: there is nothing to undo (see the module's words)."""


class SharedPool:
    """An asyncpg pool, initialised by whichever check runs first."""

    def __init__(self, key: PoolKey) -> None:
        dsn, timeout, _ = key
        self.timeout = timeout
        # min_size=0: creating the pool connects to nothing, so a database that is down at
        # start-up costs one failed run, and the pool reconnects when it is back.
        self.pool = asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=MAX_CONNECTIONS,
            timeout=timeout,
            command_timeout=statement_timeout(timeout),
            # Transaction-mode poolers (pgbouncer, Supavisor) reject named prepared statements.
            statement_cache_size=0,
            server_settings={"application_name": "probe"},
            # Releasing needs no RESET ALL & co (see the module's words); asyncpg still
            # rolls back a transaction a custom query left open.
            reset=_keep_session,
        )
        self._ready = False
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    await self.pool  # connects to nothing (min_size=0)
                    self._ready = True
        return self.pool

    async def close(self) -> None:
        if not self._ready:
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self.pool.close()
        except (TimeoutError, *DRIVER_ERRORS):
            # A server that stopped answering must not hold up a shutdown or reload.
            with contextlib.suppress(*DRIVER_ERRORS):
                self.pool.terminate()


async def _close(shared: SharedPool) -> None:
    await shared.close()


POOLS: SharedClients[PoolKey, SharedPool] = SharedClients(SharedPool, _close)
