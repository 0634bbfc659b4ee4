"""What went wrong talking to a PostgreSQL the agent keeps its own data in (history, the
fleet's lease), in the words the checks use: `password authentication failed (db:5432)`."""

from __future__ import annotations

import asyncpg

from probe.core.networds import first_line, network_words


def postgres_words(exc: BaseException, host: str, where: str) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out ({where})"
    found = network_words(exc, host, where)
    if found:
        return found
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"password authentication failed ({where})"
    return f"{first_line(exc)} ({where})"
