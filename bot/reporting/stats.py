"""The study's Tables 1 and 2 per model, with n, mean and a 95% Wilson interval. Pure."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from core.domain import NEGATIVE_SCORES, SCORES, Vote

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class ModelStats:
    model: str
    counts: dict[int, int]

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @property
    def mean(self) -> float | None:
        if not self.n:
            return None
        return sum(score * count for score, count in self.counts.items()) / self.n

    @property
    def negative(self) -> int:
        return sum(count for score, count in self.counts.items() if score in NEGATIVE_SCORES)

    @property
    def positive(self) -> int:
        return self.n - self.negative

    @property
    def negative_pct(self) -> float | None:
        return round(100 * self.negative / self.n, 1) if self.n else None

    @property
    def positive_pct(self) -> float | None:
        return round(100 * self.positive / self.n, 1) if self.n else None

    @property
    def positive_ci_pct(self) -> tuple[float, float] | None:
        """95% Wilson score interval of the positive share, in percent (sound for small n)."""
        if not self.n:
            return None
        low, high = wilson_interval(self.positive, self.n)
        return round(100 * low, 1), round(100 * high, 1)


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def model_stats(votes: Iterable[Vote], models: Iterable[str] = ()) -> list[ModelStats]:
    """One row per model, in the order models are given, then any other model by name.

    Models listed in `models` appear even with no votes, so a silent model is visible.
    """
    counts: dict[str, dict[int, int]] = defaultdict(lambda: dict.fromkeys(SCORES, 0))
    order = list(dict.fromkeys(models))
    for name in order:
        counts[name]
    for vote in votes:
        counts[vote.model][vote.score] += 1
    rest = sorted(set(counts) - set(order))
    return [ModelStats(model=name, counts=dict(counts[name])) for name in [*order, *rest]]
