"""The lease stores themselves, over real sockets: one holder at a time, expiry on the
store's clock, renewal by the holder only, and record writes fenced by the lease."""

from __future__ import annotations

import asyncio
import uuid

from probe.engine.fleet.backend import BackendError
from probe.engine.fleet.stores import open_backend

pytest_plugins = ["tests.deep_servers"]


async def test_one_holder_expiry_and_fenced_writes(backend: str) -> None:
    fleet = f"lease-{uuid.uuid4().hex[:8]}"
    first, second = open_backend(backend, fleet, 2.0), open_backend(backend, fleet, 2.0)
    try:
        assert await first.acquire("a", 1.0) == "a"
        assert await second.acquire("b", 1.0) == "a"  # held: b learns who leads
        assert await first.acquire("a", 1.0) == "a"  # renewed by its holder
        assert await first.write_record("a", {"k": '{"v": 1}'}) is True
        assert await second.write_record("b", {"k": '{"v": 2}'}) is False  # not the holder
        assert await second.load_record() == {"k": '{"v": 1}'}

        await asyncio.sleep(1.3)  # a's lease runs out on the store's clock
        assert await second.acquire("b", 1.0) == "b"
        assert await first.write_record("a", {"k": '{"v": 3}'}) is False  # fenced out
        assert await first.acquire("a", 1.0) == "b"
        assert await first.load_record() == {"k": '{"v": 1}'}

        await second.release("b")  # a clean stop hands over at once
        assert await first.acquire("a", 1.0) == "a"
        await second.release("b")  # not b's any more: a keeps it
        assert await second.acquire("b", 1.0) == "a"
    finally:
        await first.close()
        await second.close()


async def test_an_unreachable_store_is_one_plain_error() -> None:
    lease = open_backend("redis://127.0.0.1:9/0", "nowhere", 1.0)
    try:
        await lease.acquire("a", 1.0)
    except BackendError as exc:
        assert str(exc) == "connection refused (127.0.0.1:9)"
    else:
        raise AssertionError("acquire through a closed port succeeded")
    finally:
        await lease.close()
    pg = open_backend("postgresql://postgres:pw@127.0.0.1:9/x", "nowhere", 1.0)
    try:
        await pg.acquire("a", 1.0)
    except BackendError as exc:
        assert str(exc) == "connection refused (127.0.0.1:9)"
    else:
        raise AssertionError("acquire through a closed port succeeded")
    finally:
        await pg.close()
