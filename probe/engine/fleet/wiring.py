"""What the agent builds from `agent.fleet` and `agent.heartbeat` (both optional).

The elector, its stores and the heartbeat are imported only when the config asks for
them: an agent without a fleet does not hold their modules (issue 28, the default config
next to its import floor)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from probe.contract.config import Config
from probe.core.times import Clock
from probe.engine.history.store import is_postgres
from probe.engine.store import ResultStore

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from probe.engine.fleet.elector import Fleet
    from probe.engine.fleet.heartbeat import Heartbeat

__all__ = ["fleet_collector", "fleet_of", "heartbeat_of", "shared_history_paused"]


def fleet_of(config: Config, store: ResultStore, clock: Clock) -> Fleet | None:
    fleet = config.agent.fleet
    if fleet is None:
        return None
    from probe.engine.fleet.elector import Fleet

    return Fleet(fleet, config.agent.name, store, clock)


def fleet_collector(fleet: Fleet) -> Collector:
    """The `probe_fleet_*` families of a fleet `fleet_of` built."""
    from probe.engine.fleet.elector import FleetCollector

    return FleetCollector(fleet)


def heartbeat_of(config: Config, store: ResultStore) -> Heartbeat | None:
    beat = config.agent.heartbeat
    if beat is None:
        return None
    from probe.engine.fleet.heartbeat import Heartbeat

    return Heartbeat(beat, store, config.agent.live_timeout)


def shared_history_paused(config: Config, fleet: Fleet) -> Callable[[], bool]:
    """A history in PostgreSQL is shared by the replicas: only the leader writes to it.
    A SQLite file is each replica's own, and each keeps writing its own."""
    if not is_postgres(config.agent.history.get_secret_value()):
        return lambda: False
    return lambda: not fleet.is_leader()
