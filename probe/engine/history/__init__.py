"""History: results and incidents kept across restarts (docs/history.md).

The store's listener and the alert service's listener hand results and alerts to
`HistoryWriter` (memory only, never waits); once a second it writes them in one batch
through a backend (`sqlite`, `postgres`, behind `store` and `backends`), and rolls them
up by hour and day (`rollup`, `codec`, `retention`). It may import `probe.core`,
`probe.contract` and the rest of the engine; what the status page shows of it is the
web's (`probe.web.history`).
"""
