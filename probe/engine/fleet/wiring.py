"""What the agent builds from `agent.fleet` and `agent.heartbeat` (both optional)."""

from __future__ import annotations

from collections.abc import Callable

from probe.contract.config import Config
from probe.core.times import Clock
from probe.engine.fleet.elector import Fleet, FleetCollector
from probe.engine.fleet.heartbeat import Heartbeat
from probe.engine.history.store import is_postgres
from probe.engine.store import ResultStore

__all__ = ["FleetCollector", "fleet_of", "heartbeat_of", "shared_history_paused"]


def fleet_of(config: Config, store: ResultStore, clock: Clock) -> Fleet | None:
    fleet = config.agent.fleet
    return None if fleet is None else Fleet(fleet, config.agent.name, store, clock)


def heartbeat_of(config: Config, store: ResultStore) -> Heartbeat | None:
    beat = config.agent.heartbeat
    return None if beat is None else Heartbeat(beat, store, config.agent.live_timeout)


def shared_history_paused(config: Config, fleet: Fleet) -> Callable[[], bool]:
    """A history in PostgreSQL is shared by the replicas: only the leader writes to it.
    A SQLite file is each replica's own, and each keeps writing its own."""
    if not is_postgres(config.agent.history.get_secret_value()):
        return lambda: False
    return lambda: not fleet.is_leader()
