"""Ratings per model *and* adapter version: the report's and the digest's rows. Pure.

A vote carries the adapter version of the draft it rates; a row is ``model @ version`` for a
tuned model whose version is recorded, and the plain model name otherwise (the untuned base,
votes stored before versions were recorded, imported ratings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.domain import Vote

SEPARATOR = " @ "


def version_label(model: str, version: str | None) -> str:
    return f"{model}{SEPARATOR}{version}" if version else model


def model_of(label: str) -> str:
    return label.split(SEPARATOR, 1)[0]


def by_version(votes: Sequence[Vote], models: Sequence[str] = ()) -> tuple[list[Vote], list[str]]:
    """The votes with ``model`` relabelled ``model @ version``, and the row names: each configured
    model's versions in the order they were first rated (the model alone when it has no votes),
    then any other model's."""
    labelled = [
        replace(vote, model=version_label(vote.model, vote.model_version)) if vote.model_version else vote
        for vote in votes
    ]
    seen = list(dict.fromkeys(vote.model for vote in sorted(labelled, key=lambda v: v.voted_at)))
    names: list[str] = []
    for model in dict.fromkeys(models):
        mine = [label for label in seen if model_of(label) == model]
        names += mine or [model]
    names += sorted(set(seen) - set(names))
    return labelled, names


def baseline_row(baseline: str | None, names: Sequence[str]) -> str | None:
    """The row that stands for a baseline model: itself, else its most recently rated version."""
    if baseline is None or baseline in names:
        return baseline
    versions = [name for name in names if model_of(name) == baseline]
    return versions[-1] if versions else baseline


__all__ = ["baseline_row", "by_version", "model_of", "version_label"]
