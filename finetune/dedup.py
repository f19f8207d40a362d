"""Duplicate removal: exact after normalisation, then near duplicates by MinHash. Pure: no I/O.

Texts are normalised first (Unicode NFKC, case, punctuation, whitespace; every placeholder counts
as the same token), so "Hi, my backup is stuck!" and "hi my backup is stuck" are exact duplicates,
and two customers who wrote the same question with different names are too once the names are
placeholders. Near duplicates are found with MinHash signatures of word shingles and
``datasketch``'s LSH index, then confirmed by the estimated Jaccard similarity against the
threshold. The first occurrence (in the caller's order) is kept, so the result is deterministic.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from core.pii import PLACEHOLDER_PATTERN

_NON_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces, one token for every placeholder."""
    text = PLACEHOLDER_PATTERN.sub(" pii ", unicodedata.normalize("NFKC", text)).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def shingles(text: str, size: int) -> set[str]:
    """Word ``size``-grams of the normalised text; character 5-grams for texts shorter than that."""
    words = text.split()
    if len(words) >= size:
        return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}
    compact = text.replace(" ", "_")
    return {compact[i : i + 5] for i in range(max(1, len(compact) - 4))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True)
class DedupResult:
    kept: list[int]  # indexes into the input, in input order
    exact: dict[int, int]  # dropped index -> the kept index it duplicates
    near: dict[int, int]


def deduplicate(
    texts: Sequence[str], threshold: float = 0.8, shingle_size: int = 3, num_perm: int = 128, seed: int = 1
) -> DedupResult:
    """Indexes of ``texts`` to keep: the first of every exact or near-duplicate group.

    ``threshold`` is the Jaccard similarity of the shingle sets above which two texts are near
    duplicates (1.0 disables near-duplicate removal).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    kept: list[int] = []
    exact: dict[int, int] = {}
    near: dict[int, int] = {}
    first_by_hash: dict[str, int] = {}
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.2), num_perm=num_perm) if threshold < 1.0 else None
    shingle_sets: dict[int, set[str]] = {}
    for index, text in enumerate(texts):
        normal = normalize(text)
        digest = hashlib.sha256(normal.encode()).hexdigest()
        if digest in first_by_hash:
            exact[index] = first_by_hash[digest]
            continue
        first_by_hash[digest] = index
        if lsh is not None:
            own = shingles(normal, shingle_size)
            signature = MinHash(num_perm=num_perm, seed=seed)
            for shingle in sorted(own):
                signature.update(shingle.encode())
            candidates = sorted(int(key) for key in lsh.query(signature))
            similar = [c for c in candidates if jaccard(shingle_sets[c], own) >= threshold]
            if similar:
                near[index] = similar[0]
                continue
            lsh.insert(str(index), signature)
            shingle_sets[index] = own
        kept.append(index)
    return DedupResult(kept=kept, exact=exact, near=near)
