"""Work that one process of all the replicas should do at a time (the weekly digest, polling).

An ``Exclusive`` is called with the work's name (and how long to wait for it) and yields whether
this process holds it: the
PostgreSQL store's advisory locks across replicas (``PostgresStore.exclusive``), or ``alone`` for a
single process (the TinyDB store admits one), which always holds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from core.ports import Store


class Exclusive(Protocol):
    def __call__(self, name: str, wait: float = 0.0) -> AbstractContextManager[bool]:
        """Holds ``name`` for the block if no other process does, waiting up to ``wait`` seconds for
        it; yields whether it holds it (False: another process does the work, or still did)."""
        ...


@contextmanager
def alone(name: str, wait: float = 0.0) -> Iterator[bool]:
    """One process: the work is always ours."""
    yield True


@dataclass(frozen=True)
class SharedList:
    """Where replicas keep what one of them read for all (the agents' names, the Help Center's
    articles): the store's meta, and the exclusive that says who reads it now."""

    store: Store
    exclusive: Exclusive
