"""Which requests of a notification a receiver already accepted, for notifiers that send one
request per alert (PagerDuty, Opsgenie): a retry sends only the rest, so a notification of
40 alerts finishes even when one attempt's timeout covers only part of it."""

from __future__ import annotations

from collections import OrderedDict

from probe.contract.notification import Notification

KEPT = 32  # notifications remembered; a queue works on one at a time


class Progress:
    def __init__(self) -> None:
        self._done: OrderedDict[Notification, set[int]] = OrderedDict()

    def accepted(self, notification: Notification) -> set[int]:
        """The indexes already accepted (a live set: add to it as requests succeed)."""
        done = self._done.setdefault(notification, set())
        self._done.move_to_end(notification)
        while len(self._done) > KEPT:
            self._done.popitem(last=False)
        return done

    def finished(self, notification: Notification) -> None:
        self._done.pop(notification, None)
