"""The contract: what a check type and a notifier are, and the config file's shape.

`plugin` holds the bases every plugin subclasses (CheckConfig, Check, NotifierConfig,
Notifier, DeliveryError) and what a check is offered (CheckContext, AgentServices);
`plugins` the two registries, the only lists of type names; `limits` the default limits
and how a user's merge with them; `heartbeat_state` what the agent records of a check's
pings; `notification` the alerts handed to notifiers and their words; `config/` the
validated config. It may import `probe.core` only: plugins are named by the registries,
never imported here.
"""
