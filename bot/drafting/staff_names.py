"""The names of the support team, for the models' copy of a ticket.

`finetune prepare` redacts every name its export knows, which includes every agent who answered
any exported ticket; a ticket read for drafting knows only its own authors. So a customer writing
"Marta told me last week…" read ``<NAME>`` in training but "Marta" when drafting. The bot redacts the
names of all agents and admins too, read from Zendesk once an hour; when Zendesk cannot be asked,
the last list read serves on (an empty one only before the first answer).

Replicas on one database (``shared``) read Zendesk once an hour between them, not each: the list is
kept in the store's meta with the time it was read, a replica whose copy is older takes the
``staff_names`` exclusive, looks again, and only then asks Zendesk; the others take the list from
the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from core.coordination import SharedList
from core.domain import utcnow
from core.ports import GatewayError, StaffDirectory

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3600.0
RETRY_SECONDS = 60.0  # after a failed read: not every ticket should wait on a Zendesk outage
SHARED_KEY = "staff_names"


class StaffNames:
    def __init__(
        self,
        directory: StaffDirectory,
        refresh_seconds: float = REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        shared: SharedList | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.directory = directory
        self.refresh_seconds = refresh_seconds
        self.monotonic = monotonic
        self.shared = shared
        self.clock = clock
        self._names: tuple[str, ...] = ()
        self._next_read: float | None = None  # None: never read
        self._lock = threading.Lock()

    def names(self) -> tuple[str, ...]:
        with self._lock:
            now = self.monotonic()
            if self._next_read is not None and now < self._next_read:
                return self._names
            if self.shared is None:
                self._read_zendesk(now)
            elif not self._take_shared(now, self.shared):
                with self.shared.exclusive(SHARED_KEY) as ours:
                    if not ours:  # another replica reads Zendesk now: its list will be in the store
                        self._next_read = now + RETRY_SECONDS
                    elif not self._take_shared(now, self.shared) and self._read_zendesk(now):
                        self.shared.store.set_meta(
                            SHARED_KEY, {"names": list(self._names), "read_at": self.clock().isoformat()}
                        )
            return self._names

    def _read_zendesk(self, now: float) -> bool:
        try:
            self._names = tuple(self.directory.staff_names())
            self._next_read = now + self.refresh_seconds
            return True
        except GatewayError as exc:
            log.warning("could not read the agents' names from Zendesk (%s); using the last list read", exc)
            self._next_read = now + RETRY_SECONDS
            return False

    def _take_shared(self, now: float, shared: SharedList) -> bool:
        """Takes the replicas' list if it was read within the refresh interval."""
        kept = shared.store.get_meta(SHARED_KEY)
        if not kept:
            return False
        age = (self.clock() - datetime.fromisoformat(kept["read_at"])).total_seconds()
        if not 0 <= age < self.refresh_seconds:
            return False
        self._names = tuple(kept["names"])
        self._next_read = now + self.refresh_seconds - age
        return True
