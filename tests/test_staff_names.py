"""The agents' names for the models' copy of a ticket: read from Zendesk once an hour, by one
replica of many when they share a database (issue 26: periodic work not repeated by every replica)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from bot.drafting.staff_names import StaffNames
from bot.store.memory import MemoryStore
from core.coordination import SharedList
from core.ports import GatewayError


class Directory:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.reads = 0
        self.down = False

    def staff_names(self) -> list[str]:
        self.reads += 1
        if self.down:
            raise GatewayError("Zendesk is down")
        return list(self.names)


class Clocks:
    """One wall clock for all replicas, and a monotonic clock each (here: the same)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, tzinfo=UTC)

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds()


def one_at_a_time() -> object:
    lock = threading.Lock()

    @contextmanager
    def exclusive(name: str, wait: float = 0.0) -> Iterator[bool]:
        ours = lock.acquire(blocking=False)
        try:
            yield ours
        finally:
            if ours:
                lock.release()

    exclusive.lock = lock  # type: ignore[attr-defined]
    return exclusive


def replicas(count: int, directory: Directory, clocks: Clocks, exclusive) -> list[StaffNames]:
    shared = SharedList(MemoryStore(), exclusive)
    return [
        StaffNames(directory, monotonic=clocks.monotonic, shared=shared, clock=clocks.wall)
        for _ in range(count)
    ]


def test_replicas_read_zendesk_once_an_hour_between_them():
    directory, clocks = Directory(["Marta Ruiz", "Tom Berg"]), Clocks()
    first, second, third = replicas(3, directory, clocks, one_at_a_time())
    assert first.names() == second.names() == third.names() == ("Marta Ruiz", "Tom Berg")
    assert directory.reads == 1
    directory.names.append("Ana Lima")
    clocks.now += timedelta(minutes=59)
    assert second.names() == ("Marta Ruiz", "Tom Berg") and directory.reads == 1
    clocks.now += timedelta(minutes=2)  # the hour is over: one replica reads, the others take its list
    assert [r.names() for r in (third, first, second)] == [("Marta Ruiz", "Tom Berg", "Ana Lima")] * 3
    assert directory.reads == 2


def test_while_another_replica_reads_the_last_list_serves_and_zendesk_is_not_asked():
    directory, clocks = Directory(["Marta Ruiz"]), Clocks()
    exclusive = one_at_a_time()
    first, second = replicas(2, directory, clocks, exclusive)
    assert first.names() == ("Marta Ruiz",)
    clocks.now += timedelta(hours=2)
    exclusive.lock.acquire()  # another replica is reading Zendesk right now
    assert second.names() == () and first.names() == ("Marta Ruiz",)
    assert directory.reads == 1
    exclusive.lock.release()


def test_a_failed_read_keeps_the_last_list_and_leaves_the_store_alone():
    directory, clocks = Directory(["Marta Ruiz"]), Clocks()
    (replica,) = replicas(1, directory, clocks, one_at_a_time())
    assert replica.names() == ("Marta Ruiz",)
    kept = replica.shared.store.get_meta("staff_names")
    directory.down = True
    clocks.now += timedelta(hours=2)
    assert replica.names() == ("Marta Ruiz",) and directory.reads == 2
    assert replica.shared.store.get_meta("staff_names") == kept


def test_a_single_process_reads_zendesk_itself_and_keeps_nothing_in_the_store():
    directory, clocks = Directory(["Marta Ruiz"]), Clocks()
    names = StaffNames(directory, monotonic=clocks.monotonic, clock=clocks.wall)
    assert names.names() == ("Marta Ruiz",) and names.names() == ("Marta Ruiz",) and directory.reads == 1
