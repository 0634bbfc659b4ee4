"""`agent.otlp`: the /metrics families pushed over OTLP/HTTP (docs/metrics.md).

`push` runs the push for the agent, `translate` turns prometheus_client families into the
OpenTelemetry SDK's data model, `sender` holds the SDK's exporter on a worker thread. The
OpenTelemetry packages are imported only here, and only with the `probe[otlp]` extra; the
config's side is `probe.contract.config.otlp`. It may import `probe.core`,
`probe.contract` and the engine's metrics.
"""
