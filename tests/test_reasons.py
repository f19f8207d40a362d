from datetime import UTC, datetime

from bot.reporting.reasons import ReasonCount, reasons_line, top_reasons
from core.domain import Vote

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def vote(model, score, reason=None, rater="U1", draft="t1r1A"):
    return Vote(1, draft, model, rater, score, "button", T0, reason)


def test_reasons_are_counted_per_model_most_frequent_first_and_cut_at_the_limit():
    votes = [
        *(vote("ft", 1, "tone", rater=f"U{n}") for n in range(3)),
        *(vote("ft", 2, "wrong_facts", rater=f"V{n}") for n in range(5)),
        vote("ft", 2, "too_long"),
        vote("ft", 2, "too_short"),  # ties with too_long: VOTE_REASONS order decides
        vote("ft", 2),  # no reason given: not counted
        vote("base", 1, "not_answered"),
        vote("other-model", 1, "unsafe"),
    ]
    found = top_reasons(votes, ["base", "ft"], limit=3)
    assert found == [
        ReasonCount("base", "not_answered", 1, 100.0),
        ReasonCount("ft", "wrong_facts", 5, 50.0),
        ReasonCount("ft", "tone", 3, 30.0),
        ReasonCount("ft", "too_long", 1, 10.0),
        ReasonCount("other-model", "unsafe", 1, 100.0),
    ]
    assert reasons_line(found, "ft") == "Wrong facts 5 (50%), Tone 3 (30%), Too long 1 (10%)"
    assert reasons_line(found, "nobody") is None


def test_a_reason_left_on_a_vote_that_is_no_longer_negative_is_ignored():
    # A store clears reasons on a new score; an imported file might not: only 1-2 count.
    assert top_reasons([vote("ft", 4, "tone")]) == []
