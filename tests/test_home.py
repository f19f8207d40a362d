"""The App Home tab's lists, from a store, without Slack (the tab over HTTP is in test_send_modal.py)."""

from datetime import UTC, datetime, timedelta

from bot.slack.home import gather, home_view
from bot.store.memory import MemoryStore
from core.domain import Vote

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # a Thursday


def posted_round(store: MemoryStore, ticket: int, comment: int, at: datetime) -> list[str]:
    round_ = store.create_round(ticket, comment, [("A", "m1"), ("B", "m2")])
    ids = [d.id for d in store.drafts_for_round(round_.id)]
    for n, draft_id in enumerate(ids):
        store.save_generated(draft_id, f"Reply {draft_id}", None)
        store.add_draft_message(draft_id, "CDRAFTS", f"{at.timestamp() + n:.6f}")
    return ids


def shown(store: MemoryStore, user: str) -> str:
    view = home_view(gather(store, user, NOW, ["m1", "m2"], show_standings=False))
    return "\n".join(block["text"]["text"] for block in view["blocks"])


def test_drafts_of_a_later_round_are_named_with_their_round():
    store = MemoryStore()
    first = posted_round(store, 7, 70, NOW - timedelta(hours=3))
    store.record_vote(Vote(7, first[0], "m1", "UADA", 4, "button", NOW - timedelta(hours=2)))
    assert "Ticket #7: 1 draft to rate" in shown(store, "UADA")
    second = posted_round(store, 7, 71, NOW - timedelta(hours=1))  # the customer replied
    home = shown(store, "UADA")
    assert "Ticket #7: 2 drafts to rate (round 2)" in home
    store.record_vote(Vote(7, second[1], "m2", "UADA", 2, "button", NOW - timedelta(minutes=5)))
    home = shown(store, "UADA")
    assert "Ticket #7, Draft B of round 2: 2/5" in home and "Ticket #7, Draft A: 4/5" in home
    store.mark_sent(second[0], "UADA")
    home = shown(store, "UADA")
    assert "Ticket #7, Draft A of round 2" in home.split("You sent to Zendesk")[1]
    assert "Nothing waiting: every recent ticket has your rating or an answer sent." in home
