"""The Help Center read once per interval by one replica of many (issue 26: periodic work not
repeated by every replica).

Each replica keeps its own index on its own disk (the BM25 indexes are built in memory), so every
replica refreshes on its schedule; with a shared database, a refresh first looks at the articles the
last reader kept in the store's meta: read within 90% of the interval, they are adopted without
asking Zendesk; older, the replica takes the ``help_center_articles`` exclusive, looks again, and
only then reads the listings and keeps them for the others. A replica that finds another one
reading skips this turn and adopts at its next.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from bot.drafting.grounding import HelpCenterIndex
from core.coordination import SharedList
from core.domain import utcnow
from core.ports import HelpCenterSource

KEY = "help_center_articles"
FRESH_SHARE = 0.9  # a copy this far into the interval is read again (schedules drift by seconds)
Outcome = Literal["read", "adopted", "skipped"]


class SharedHelpCenterRefresh:
    def __init__(
        self,
        index: HelpCenterIndex,
        source: HelpCenterSource,
        shared: SharedList,
        interval_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.index = index
        self.source = source
        self.shared = shared
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._changed = 0  # by the last adoption

    def refresh(self) -> tuple[Outcome, int]:
        """What this replica did, and how many articles changed in its index. A failed read raises
        (the index keeps what it had) and keeps nothing in the store."""
        if self._adopted():
            return "adopted", self._changed
        with self.shared.exclusive(KEY) as ours:
            if not ours:
                return "skipped", 0
            if self._adopted():
                return "adopted", self._changed
            changed = self.index.refresh(self.source)
            self.shared.store.set_meta(
                KEY, {"read_at": self.clock().isoformat(), "articles": self.index.export()}
            )
            return "read", changed

    def _adopted(self) -> bool:
        kept = self.shared.store.get_meta(KEY)
        if not kept:
            return False
        age = (self.clock() - datetime.fromisoformat(kept["read_at"])).total_seconds()
        if not 0 <= age < FRESH_SHARE * self.interval_seconds:
            return False
        self._changed = self.index.adopt(kept["articles"])
        return True
