"""One driver client per event loop and connection settings, shared by the checks that agree.

A `postgres` check kept an asyncpg pool of its own and a `redis` check a redis-py client
and pool: 15-20 KB a check in the agent (its socket, buffers, locks and queues) and one
server connection each, so 250 checks of one database held 250 of its connection slots.
Checks whose connection settings agree (the same DSN or URL, hence the same TLS and
credentials, and the same timeout) now take one client from here on their first run and
give it back when they close; the last check out closes it. The key is the whole
connection string, so two checks differing in anything the driver reads (a password, a
query parameter) never share. Each check keeps its own measurements (counter windows,
restart watch): only the socket is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(slots=True)
class _Entry(Generic[T]):
    client: T
    users: int = 0


class SharedClients(Generic[K, T]):
    """Clients made by `make(key)` and closed by `close(client)`, counted by user."""

    def __init__(self, make: Callable[[K], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._make = make
        self._close = close
        self._open: dict[tuple[asyncio.AbstractEventLoop, K], _Entry[T]] = {}

    def acquire(self, key: K) -> T:
        """The client for `key` on the running loop (made on first use); `release` it once
        done. A client belongs to its loop: tests and `probe check` run loops one after
        another, and a socket of a closed loop would fail every run on the next."""
        slot = (asyncio.get_running_loop(), key)
        entry = self._open.get(slot)
        if entry is None:
            entry = self._open[slot] = _Entry(self._make(key))
        entry.users += 1
        return entry.client

    async def release(self, key: K, loop: asyncio.AbstractEventLoop) -> None:
        """One user is done with the client; the last one closes it."""
        slot = (loop, key)
        entry = self._open.get(slot)
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0:
            # Out of the table before the await: a check starting meanwhile (a reload)
            # gets a fresh client rather than one being closed.
            del self._open[slot]
            await self._close(entry.client)

    def count(self) -> int:
        """Clients open now (tests read it)."""
        return len(self._open)
