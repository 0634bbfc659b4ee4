"""The engine: what runs the checks, keeps their results and judges them.

`factory` builds a runner from a config; `runner` runs one check once, `scheduler` runs
them all on their intervals; `store` keeps the latest results and renders the /health,
/ready and /live bodies (`health`); `metrics` collects /metrics; `pings` records
heartbeats; `alerts/`, `history/`, `fleet/` and `otlp/` judge, remember, elect a leader
and export. The engine may
import `probe.core`, `probe.contract` and the plugins (through the registries), never
the web, the CLI or the agent.
"""
