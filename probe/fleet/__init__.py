"""Fleet: replicas of one config elect a leader through a lease in a store the app
already runs (PostgreSQL or Redis), and only the leader notifies and writes shared history.

- `backend.py`: what a lease store does; `stores.py`: which one a DSN names.
- `postgres.py`, `redis.py`: the two stores; their own atomicity does the electing.
- `record.py`: the alert record (what was notified for each alert key, and its resolve),
  kept in the store so a new leader neither repeats a firing nor forgets a resolve.
- `elector.py`: renews the lease, steps down in time, gates notifications.
- `heartbeat.py`: the outgoing dead-man's switch (`agent.heartbeat`).
"""
