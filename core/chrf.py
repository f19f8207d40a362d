"""chrF, sacrebleu's character n-gram F-score (0-100): the one measure of how close a text is to a
reference, used by the bot (a draft against the reply sent), by `finetune eval` (generated answers
against the held-out replies), by the demo's simulated raters and the grounding benchmark.

sacrebleu loads on the first call, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence


def chrf(text: str, reference: str) -> float:
    """chrF of one ``text`` against one ``reference`` (surrounding whitespace ignored)."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(text.strip(), [reference.strip()]).score)


def corpus_chrf(texts: Sequence[str], references: Sequence[str]) -> float:
    """chrF of a corpus: the character n-gram statistics summed over every (text, reference) pair
    before the F-score is taken, as sacrebleu's corpus score does (not the mean of sentence scores)."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().corpus_score(list(texts), [list(references)]).score)
