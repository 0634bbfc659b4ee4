"""The alert engine: results in, notifications out (docs/alerts.md).

`engine` is the state machine (pending, firing, resolved, per check and measure);
`service` runs it for the agent with a `delivery` queue per notifier (retries, backoff,
counts), its `state` saved by `state_writer`; `session` is the HTTP session notifiers
share; `alert_test` is `probe alert-test`. It may import `probe.core`, `probe.contract`
and the rest of the engine; notifiers are built through the registry, never imported.
"""
