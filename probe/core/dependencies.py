"""`depends_on`: which failing check another one waits on. Shared by the alert engine
(which opens no new alerts for a blocked check) and /health?verbose=1 (`blocked_by`)."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence


def blocked_by(
    name: str, depends_on: Mapping[str, Sequence[str]], failing: Container[str]
) -> str | None:
    """The failing check at the root of `name`'s dependencies, or None when none fails.

    The root, not the nearest: with queues -> redis -> network all failing, queues and
    redis both wait on `network`, the one thing to fix. Cycles are config errors; the
    `seen` set only keeps a bad file from hanging the agent.
    """
    seen = {name}

    def walk(check: str) -> str | None:
        for parent in depends_on.get(check, ()):
            if parent in seen:
                continue
            seen.add(parent)
            root = walk(parent)
            if root is not None:
                return root
            if parent in failing:
                return parent
        return None

    return walk(name)
