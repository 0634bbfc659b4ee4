"""Plugins: the notifier types, one module per type, each named in `NOTIFIER_TYPES`.

Each sends one notification in its service's own format and raises `DeliveryError` in
words a user can act on; `errors` sorts and words a failed send, `posting` is the one
JSON POST most of them make. They may import `probe.core`, `probe.contract` and each
other's helpers; never a check type, the engine (which queues, retries and counts their
sends) or a face.
"""
