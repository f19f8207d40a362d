"""Simulated raters for the demo: scores from a draft's similarity to the real agent answer. Pure.

They stand in for the study's human rater so that the demo's report has something to measure:
each scores a draft 1–5 from its chrF (sacrebleu's character n-gram F-score, 0–100) against the
answer the sample's agent actually gave, on one fixed scale, shifted by the rater's leniency and a
small per-draft wobble so that three raters do not agree perfectly. Nothing here looks at which
model wrote a draft.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# chrF at which a draft earns 2, 3, 4 and 5 points (below the first: 1). Unrelated English text
# scores about 10-20 against an answer; a paraphrase of it 40-60; the answer itself 100.
SCALE = (20.0, 30.0, 45.0, 60.0)
WOBBLE = 4.0  # chrF points either way, fixed per rater and draft


@dataclass(frozen=True)
class SimulatedRater:
    user: str  # the Slack user id the rater's votes come from
    leniency: float  # chrF points added before the scale is read


RATERS = (
    SimulatedRater("U0SIMRATER1", 0.0),
    SimulatedRater("U0SIMRATER2", 4.0),
    SimulatedRater("U0SIMRATER3", -4.0),
)
LABEL = "simulated raters (not people): each draft scored by its similarity (chrF) to the agent's real answer"


def similarity(draft: str, reference: str) -> float:
    """chrF of ``draft`` against ``reference``, 0-100: the measure the digest's "sent" figures use."""
    from core.chrf import chrf

    return chrf(draft, reference)


def _wobble(rater: SimulatedRater, draft_key: str) -> float:
    digest = hashlib.sha256(f"{rater.user}:{draft_key}".encode()).digest()
    return (digest[0] / 255.0 * 2.0 - 1.0) * WOBBLE


def score(rater: SimulatedRater, draft_key: str, chrf: float) -> int:
    """The rater's 1–5 for a draft of this similarity. ``draft_key`` names the draft by its ticket
    and model, not its blind label (drawn at random per run): the same draft gets the same scores
    in every run, so the demo's figures repeat."""
    seen = chrf + rater.leniency + _wobble(rater, draft_key)
    return 1 + sum(seen >= step for step in SCALE)
