"""The agent settings the web reads, and the holder a reload swaps them in.

Handlers read `LiveSettings.current` on each request, so a reload that sets a token or
turns the status page off applies to the next request, and no handler holds the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from probe.contract.config.schema import AgentConfig


@dataclass(frozen=True, slots=True)
class WebSettings:
    name: str = "probe"
    version: str = "0.0.0"
    live_timeout: float = 30.0
    status_page: Literal["public", "token", "off"] = "public"
    # Secrets: kept out of repr, so a logged or printed settings object shows none.
    auth_token: str = field(default="", repr=False)
    ping_token: str = field(default="", repr=False)
    admin_token: str = field(default="", repr=False)

    @classmethod
    def of(cls, agent: AgentConfig) -> WebSettings:
        return cls(
            name=agent.name,
            version=agent.version,
            live_timeout=agent.live_timeout,
            status_page=agent.status_page,
            auth_token=agent.auth_token.get_secret_value(),
            ping_token=agent.ping_token.get_secret_value(),
            admin_token=agent.admin_token.get_secret_value(),
        )


class LiveSettings:
    """The settings in force; `swap` replaces them as a whole (reloads)."""

    def __init__(self, current: WebSettings) -> None:
        self.current = current

    @classmethod
    def of(cls, agent: AgentConfig) -> LiveSettings:
        return cls(WebSettings.of(agent))

    def swap(self, settings: WebSettings) -> None:
        self.current = settings
