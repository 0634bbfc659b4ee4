"""TCP: open a connection and close it again."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from pydantic import Field

from probe.checks.errors import failure
from probe.contract.plugin import Check, CheckConfig, Report
from probe.core.networds import address, network_words


class TcpConfig(CheckConfig):
    type: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)

    def target(self) -> str:
        return address(self.host, self.port)


class TcpCheck(Check[TcpConfig]):
    config_model = TcpConfig

    async def run(self) -> Report:
        config = self.config
        try:
            _, writer = await asyncio.open_connection(config.host, config.port)
        except OSError as exc:
            raise failure(exc, network_words(exc, config.host, config.target())) from None
        writer.close()
        with contextlib.suppress(OSError):  # the connect was the test; a reset on close is not
            await writer.wait_closed()
        return Report()
