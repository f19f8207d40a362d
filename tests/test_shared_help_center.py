"""Replicas on one database read the Help Center once per interval between them (issue 26): one
reads the listings and keeps the articles in the store's meta, the others adopt them into their own
index without asking Zendesk; a failed read keeps nothing."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from bot.drafting.grounding import HelpCenterIndex
from bot.drafting.shared_help_center import SharedHelpCenterRefresh
from bot.store.memory import MemoryStore
from core.coordination import SharedList
from core.ports import GatewayError
from tests.test_staff_names import Clocks, one_at_a_time

HOUR = 3600.0


class HelpCenter:
    def __init__(self) -> None:
        self.articles = {"en-us": [(1, "Reset your password", "Open Settings, then Security.")]}
        self.reads = 0
        self.down = False

    def help_center_articles(self, locale: str) -> list[SimpleNamespace]:
        self.reads += 1
        if self.down:
            raise GatewayError("Zendesk is down")
        return [
            SimpleNamespace(
                id=i,
                title=t,
                body=f"<p>{b}</p>",
                url=f"https://help.example.com/{i}",
                updated_at="2026-03-01T00:00:00Z",
                draft=False,
            )
            for i, t, b in self.articles.get(locale, [])
        ]


def replicas(tmp_path, source: HelpCenter, clocks: Clocks, exclusive, count: int = 2):
    shared = SharedList(MemoryStore(), exclusive)
    return [
        SharedHelpCenterRefresh(
            HelpCenterIndex(tmp_path / f"replica{n}" / "index.json", ["en-us"]),
            source,
            shared,
            HOUR,
            clocks.wall,
        )
        for n in range(count)
    ]


def test_one_replica_reads_the_help_center_and_the_others_adopt_its_articles(tmp_path):
    source, clocks = HelpCenter(), Clocks()
    first, second = replicas(tmp_path, source, clocks, one_at_a_time())
    assert first.refresh() == ("read", 1) and second.refresh() == ("adopted", 1)
    assert source.reads == 1
    assert [p.article.title for p in second.index.search("password reset", 1)] == ["Reset your password"]
    assert (tmp_path / "replica1" / "index.json").exists()  # kept on the replica's disk for its next start
    source.articles["en-us"].append((2, "Export your data", "Use Settings, then Export."))
    clocks.now += timedelta(minutes=50)  # within 90% of the interval: adopted again, not read
    assert second.refresh() == ("adopted", 0) and source.reads == 1
    clocks.now += timedelta(minutes=10)
    assert second.refresh() == ("read", 1) and first.refresh() == ("adopted", 1)
    assert source.reads == 2 and len(first.index) == 2


def test_a_replica_that_finds_another_reading_skips_its_turn(tmp_path):
    source, clocks = HelpCenter(), Clocks()
    exclusive = one_at_a_time()
    (replica,) = replicas(tmp_path, source, clocks, exclusive, count=1)
    exclusive.lock.acquire()  # another replica reads now
    assert replica.refresh() == ("skipped", 0) and source.reads == 0
    exclusive.lock.release()


def test_a_failed_read_raises_and_keeps_nothing_for_the_others(tmp_path):
    source, clocks = HelpCenter(), Clocks()
    first, second = replicas(tmp_path, source, clocks, one_at_a_time())
    source.down = True
    with pytest.raises(GatewayError):
        first.refresh()
    assert first.shared.store.get_meta("help_center_articles") is None
    source.down = False
    assert second.refresh() == ("read", 1)
