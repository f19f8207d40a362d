"""Train/eval split by ticket: no ticket on both sides. Pure: no I/O.

Tickets are ordered by a seeded hash of their id (not by id or date, which would put all the
recent tickets on one side) and the first ``ceil(fraction * n)`` go to eval. The same ids, seed
and fraction always give the same split, and adding tickets moves few existing ones.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    train: frozenset[int]
    eval: frozenset[int]


def _rank(ticket_id: int, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{ticket_id}".encode()).hexdigest()


def split_tickets(ticket_ids: Iterable[int], eval_fraction: float, seed: int) -> Split:
    """Assign each ticket to train or eval; eval gets at least one ticket when there are two."""
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    ids = sorted(set(ticket_ids), key=lambda t: _rank(t, seed))
    count = math.ceil(eval_fraction * len(ids)) if eval_fraction > 0 else 0
    if eval_fraction > 0 and len(ids) >= 2:
        count = min(max(count, 1), len(ids) - 1)
    return Split(train=frozenset(ids[count:]), eval=frozenset(ids[:count]))
