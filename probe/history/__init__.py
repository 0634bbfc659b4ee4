"""History: results and incidents kept across restarts (docs/history.md).

Flow: the store's listener and the alert service's listener hand results and alerts to
`HistoryWriter` (memory only, never waits); once a second it writes them in one batch
through a backend (`sqlite.py`, `postgres.py`), then rebuilds `HistoryView`, whose
pre-rendered bodies the endpoints serve.
"""
