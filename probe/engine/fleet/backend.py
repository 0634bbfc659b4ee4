"""What a lease store does. Two kinds, one file each: `postgres.py` and `redis.py`."""

from __future__ import annotations

from typing import Protocol


class BackendError(Exception):
    """The store could not be reached or answered an error, in words safe to log."""


class LeaseBackend(Protocol):
    @property
    def description(self) -> str:
        """`redis 127.0.0.1:6379`, safe to print (no password)."""
        ...

    async def acquire(self, me: str, lease: float) -> str | None:
        """Take the lease if it is free or expired, or renew it if `me` holds it, for
        `lease` seconds on the store's clock. Returns the holder after the call (`me`
        when this replica leads), None when nobody does."""
        ...

    async def release(self, me: str) -> None:
        """Give the lease up if `me` still holds it (a clean stop hands over at once)."""
        ...

    async def load_record(self) -> dict[str, str]:
        """Every alert record entry: key -> JSON text."""
        ...

    async def write_record(self, me: str, entries: dict[str, str]) -> bool:
        """Write entries only while `me` holds an unexpired lease (checked by the store, on
        its clock, in the same atomic step). False when fenced out."""
        ...

    async def close(self) -> None: ...
