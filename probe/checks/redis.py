"""Redis: PING, and memory use against `maxmemory`, in one round trip."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import field_validator
from redis import exceptions as rx
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from probe.checks.base import Check, Report
from probe.checks.errors import address, failure, network_words
from probe.config import CheckConfig
from probe.model import Sample, Unit
from probe.redact import redact_url, url_secrets

DEFAULT_PORT = 6379
_SCHEMES = ("redis", "rediss", "unix")


class RedisConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"memory"}

    type: Literal["redis"]
    url: str

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in _SCHEMES:
            raise ValueError(
                f"expected a URL like redis://:password@host:6379/0, got {redact_url(value)!r}"
            )
        return value

    def target(self) -> str:
        return redact_url(self.url)

    def secrets(self) -> list[str]:
        return url_secrets(self.url)

    def host_and_address(self) -> tuple[str, str]:
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return parts.path, parts.path
        host = parts.hostname or "localhost"
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            port = DEFAULT_PORT
        return host, address(host, port)


class RedisCheck(Check[RedisConfig]):
    config_model = RedisConfig

    def __init__(self, config: RedisConfig) -> None:
        super().__init__(config)
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
        except (rx.RedisError, OSError) as exc:
            raise failure(exc, self._words(exc)) from None
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
        # Explicit timeouts, and never a retry after a timeout: redis-py would otherwise
        # wait well past the check's deadline on a silent server. One immediate retry on a
        # connection error lets a pooled socket that Redis closed while idle (restart,
        # `timeout` setting) reconnect instead of failing a run while Redis is fine.
        if self._client is None:
            timeout = self.config.timeout
            self._client = aioredis.from_url(
                self.config.url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(rx.ConnectionError,)),
                retry_on_timeout=False,
                max_connections=2,
                client_name="probe",
            )
        return self._client

    def _words(self, exc: BaseException) -> str | None:
        host, where = self.config.host_and_address()
        if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError):
            return f"authentication failed: {_first_line(exc)}"
        if isinstance(exc, rx.ResponseError):
            return f"redis error: {_first_line(exc)}"
        words = network_words(exc, host, where)
        if words:
            return words
        if isinstance(exc, rx.ConnectionError):
            return f"connection closed by server ({where})"
        return None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return text.splitlines()[0] if text else "no details"
