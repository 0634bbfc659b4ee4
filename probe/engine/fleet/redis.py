"""The lease as a Redis key: `SET NX PX` takes it, a compare-and-renew script keeps it,
a compare-and-delete script gives it up. Redis runs each command and script atomically;
that is the whole election. The key expires on Redis's clock, not the replica's.

Keys (one hash tag, so a cluster keeps them on one shard): `probe:fleet:{name}:leader`
holds the leader's identity, `probe:fleet:{name}:alerts` is the alert record (a hash),
`probe:fleet:{name}:windows` and `probe:fleet:{name}:notes` the run-time maintenance
windows and incident notes (hashes: id -> JSON).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from probe.core.networds import first_line, network_words
from probe.core.redact import redact_url
from probe.engine.fleet.backend import BackendError
from probe.engine.fleet.plans import PLAN_KINDS

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# Fenced: the record is written only by the holder of the (unexpired) lease key.
WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
for i = 2, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return 1
"""


class RedisLease:
    def __init__(self, url: str, fleet: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "localhost"
        self._where = f"{self._host}:{parts.port or 6379}"
        self.description = redact_url(url)
        self.leader_key = f"probe:fleet:{{{fleet}}}:leader"
        self.record_key = f"probe:fleet:{{{fleet}}}:alerts"
        self.plan_keys = {kind: f"probe:fleet:{{{fleet}}}:{kind}" for kind in PLAN_KINDS}
        self._client: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            health_check_interval=0,
        )
        self._renew = self._client.register_script(RENEW)
        self._release = self._client.register_script(RELEASE)
        self._write = self._client.register_script(WRITE)
        self._leading = False  # renew first when we hold it: one round trip either way

    def _words(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"timed out ({self._where})"
        return network_words(exc, self._host, self._where) or f"{first_line(exc)} ({self._where})"

    async def acquire(self, me: str, lease: float) -> str | None:
        ms = max(1, int(lease * 1000))
        try:
            if self._leading and await self._renew(keys=[self.leader_key], args=[me, ms]):
                return me
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self.leader_key, me, nx=True, px=ms)
                pipe.get(self.leader_key)
                _, holder = await pipe.execute()
        except (OSError, TimeoutError, RedisError) as exc:
            raise BackendError(self._words(exc)) from exc
        self._leading = holder == me
        return str(holder) if holder is not None else None

    async def release(self, me: str) -> None:
        self._leading = False
        try:
            await self._release(keys=[self.leader_key], args=[me])
        except (OSError, TimeoutError, RedisError) as exc:
            raise BackendError(self._words(exc)) from exc

    async def load_record(self) -> dict[str, str]:
        try:
            found = await self._client.hgetall(self.record_key)
        except (OSError, TimeoutError, RedisError) as exc:
            raise BackendError(self._words(exc)) from exc
        return {str(k): str(v) for k, v in found.items()}

    async def write_record(self, me: str, entries: dict[str, str]) -> bool:
        if not entries:
            return True
        args: list[str] = [me]
        for key, value in entries.items():
            args += [key, value]
        try:
            written = await self._write(keys=[self.leader_key, self.record_key], args=args)
        except (OSError, TimeoutError, RedisError) as exc:
            raise BackendError(self._words(exc)) from exc
        return bool(written)

    async def load_plans(self) -> dict[str, dict[str, str]]:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for kind in PLAN_KINDS:
                    pipe.hgetall(self.plan_keys[kind])
                found = await pipe.execute()
        except (OSError, TimeoutError, RedisError) as exc:
            raise BackendError(self._words(exc)) from exc
        return {
            kind: {str(k): str(v) for k, v in entries.items()}
            for kind, entries in zip(PLAN_KINDS, found, strict=True)
        }

    async def get_plan(self, kind: str, id: str) -> str | None:
        try:
            found = await self._client.hget(self.plan_keys[kind], id)
        except (OSError, TimeoutError, RedisError) as exc:
            raise BackendError(self._words(exc)) from exc
        return None if found is None else str(found)

    async def put_plan(self, kind: str, id: str, entry: str) -> int:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hset(self.plan_keys[kind], id, entry)
                pipe.hlen(self.plan_keys[kind])
                _, count = await pipe.execute()
        except (OSError, TimeoutError, RedisError) as exc:
            raise BackendError(self._words(exc)) from exc
        return int(count)

    async def drop_plans(self, kind: str, ids: list[str]) -> None:
        if not ids:
            return
        try:
            await self._client.hdel(self.plan_keys[kind], *ids)
        except (OSError, TimeoutError, RedisError) as exc:
            raise BackendError(self._words(exc)) from exc

    async def close(self) -> None:
        await self._client.aclose()
