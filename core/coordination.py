"""Work that one process of all the replicas should do at a time (the weekly digest, polling).

An ``Exclusive`` is called with the work's name and yields whether this process holds it now: the
PostgreSQL store's advisory locks across replicas (``PostgresStore.exclusive``), or ``alone`` for a
single process (the TinyDB store admits one), which always holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Exclusive = Callable[[str], AbstractContextManager[bool]]


@contextmanager
def alone(name: str) -> Iterator[bool]:
    """One process: the work is always ours."""
    yield True
