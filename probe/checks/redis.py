"""Redis: PING, and memory use against `maxmemory`, in one round trip."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import redis.asyncio as aioredis
from pydantic import field_validator
from redis import exceptions as rx

from probe.checks import redis_client
from probe.checks.errors import failure
from probe.contract import Check, CheckConfig, CheckContext, Report
from probe.model import Sample, Unit
from probe.redact import redact_url, url_secrets


class RedisConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"memory"}
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url"})

    type: Literal["redis"]
    url: str

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return redis_client.checked_url(value)

    def target(self) -> str:
        return redact_url(self.url)

    def secrets(self) -> list[str]:
        return url_secrets(self.url)


class RedisCheck(Check[RedisConfig]):
    config_model = RedisConfig

    def __init__(self, config: RedisConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        self._client: aioredis.Redis | None = None

    async def run(self) -> Report:
        client = self._get_client()
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.ping()
                pipe.info("memory")
                _, info = await pipe.execute()
        except rx.TimeoutError:
            raise TimeoutError() from None
        except redis_client.DRIVER_ERRORS as exc:
            raise failure(exc, redis_client.words(exc, self.config.url)) from None
        return Report(samples=self._memory(info))

    def _memory(self, info: dict[str, Any]) -> list[Sample]:
        maxmemory = int(info.get("maxmemory") or 0)
        if maxmemory > 0:
            return [Sample("memory", int(info["used_memory"]) / maxmemory, Unit.RATIO)]
        if "memory" in self.config.warn or "memory" in self.config.fail:
            # Say why a configured limit is never checked, rather than passing silently.
            return [Sample("memory", None, Unit.RATIO, note="maxmemory is not set")]
        return []

    def _get_client(self) -> aioredis.Redis:
        if self._client is None:
            timeout = self.config.timeout
            self._client = redis_client.connect(self.config.url, timeout, socket_timeout=timeout)
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
