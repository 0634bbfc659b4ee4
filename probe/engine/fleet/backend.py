"""What a lease store does, and keeps (the alert record, shared windows and notes).
Two kinds, one file each: `postgres.py` and `redis.py`."""

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

    async def load_plans(self) -> dict[str, dict[str, str]]:
        """Every run-time maintenance window and incident note the fleet shares:
        kind (`windows`, `notes`) -> id -> JSON text."""
        ...

    async def get_plan(self, kind: str, id: str) -> str | None: ...

    async def put_plan(self, kind: str, id: str, entry: str) -> int:
        """Add or replace one entry (any replica may: an admin write lands anywhere).
        Returns how many entries of `kind` there are now, for the writer to bound."""
        ...

    async def drop_plans(self, kind: str, ids: list[str]) -> None: ...

    async def close(self) -> None: ...
