"""The names of the support team, for the models' copy of a ticket.

`finetune prepare` redacts every name its export knows, which includes every agent who answered
any exported ticket; a ticket read for drafting knows only its own authors. So a customer writing
"Marta told me last week…" read ``<NAME>`` in training but "Marta" when drafting. The bot redacts the
names of all agents and admins too, read from Zendesk once an hour; when Zendesk cannot be asked,
the last list read serves on (an empty one only before the first answer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.ports import GatewayError, StaffDirectory

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3600.0
RETRY_SECONDS = 60.0  # after a failed read: not every ticket should wait on a Zendesk outage


class StaffNames:
    def __init__(
        self,
        directory: StaffDirectory,
        refresh_seconds: float = REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.refresh_seconds = refresh_seconds
        self.monotonic = monotonic
        self._names: tuple[str, ...] = ()
        self._next_read: float | None = None  # None: never read
        self._lock = threading.Lock()

    def names(self) -> tuple[str, ...]:
        with self._lock:
            now = self.monotonic()
            if self._next_read is not None and now < self._next_read:
                return self._names
            try:
                self._names = tuple(self.directory.staff_names())
                self._next_read = now + self.refresh_seconds
            except GatewayError as exc:
                log.warning(
                    "could not read the agents' names from Zendesk (%s); using the last list read", exc
                )
                self._next_read = now + RETRY_SECONDS
            return self._names
