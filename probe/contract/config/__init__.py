"""The config file -> a validated, typed `Config` (docs/configuration.md).

`source` reads the file and expands `${VAR}`; `schema` holds the sections; `loader`
validates checks and notifiers with the models their plugins register; `rules` checks
what spans entries; `errors` words every problem as `file: key.path: what is wrong`;
`otlp` is the shape of `agent.otlp`. It may import `probe.core` and the rest of
`probe.contract`; the plugin models are reached through the registries.
"""

from probe.contract.config.errors import ConfigError
from probe.contract.config.loader import alerts_from_dict, load_config, load_or_report
from probe.contract.config.schema import AgentConfig, AlertOverride, AlertsConfig, Config, Silence
from probe.contract.config.source import DEFAULT_CONFIG_PATH, expand_env, resolve_path

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AgentConfig",
    "AlertOverride",
    "AlertsConfig",
    "Config",
    "ConfigError",
    "Silence",
    "alerts_from_dict",
    "expand_env",
    "load_config",
    "load_or_report",
    "resolve_path",
]
