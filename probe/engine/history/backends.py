"""The backend for an `agent.history` value: the one place that names both of them."""

from __future__ import annotations

from probe.engine.history.store import Backend, sqlite_path


def open_backend(dsn: str, repair: bool = True) -> Backend:
    """A backend for a validated `agent.history` value (not `off`), not yet opened.

    `repair=False` is for readers (`probe history`): they never move a broken file aside.
    """
    path = sqlite_path(dsn)
    if path is not None:
        from probe.engine.history.sqlite import SqliteBackend

        return SqliteBackend(path, repair=repair)
    from probe.engine.history.postgres import PostgresBackend

    return PostgresBackend(dsn)
