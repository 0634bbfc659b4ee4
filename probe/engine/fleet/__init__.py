"""Fleet: replicas of one config elect a leader through a lease in a store the app
already runs (PostgreSQL or Redis), and only the leader notifies and writes shared history.

`backend` is what a lease store does and `stores` which one a DSN names; `postgres` and
`redis` are the two stores, whose own atomicity does the electing; `record` keeps what
was notified for each alert key in the store, so a new leader neither repeats a firing
nor forgets a resolve; `elector` renews the lease and gates notifications; `heartbeat` is
the outgoing dead-man's switch (`agent.heartbeat`); `wiring` builds them for the agent.
It may import `probe.core`, `probe.contract` and the rest of the engine.
"""
