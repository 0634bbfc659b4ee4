"""Which lease store a `agent.fleet.backend` DSN names (imported lazily: one driver only)."""

from __future__ import annotations

from probe.engine.fleet.backend import LeaseBackend


def open_backend(dsn: str, fleet: str, timeout: float) -> LeaseBackend:
    if dsn.startswith(("redis://", "rediss://")):
        from probe.engine.fleet.redis import RedisLease

        return RedisLease(dsn, fleet, timeout)
    from probe.engine.fleet.postgres import PostgresLease

    return PostgresLease(dsn, fleet, timeout)
