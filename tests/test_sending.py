"""SendFlow's decisions without HTTP: what it refuses before Slack or Zendesk is asked (the whole
flow over HTTP is tests/test_send_modal.py)."""

from bot.memory_store import MemoryStore
from bot.send_views import KIND_BLOCK, ModalState, text_hash
from bot.sending import TOO_LONG, SendFlow, body_hash, newer_public_comment
from core.domain import SEND_FAILED, Comment, SendRecord, Ticket
from tests.recording_poster import RecordingPoster
from tests.test_store import T0

CHANNEL = "CDRAFTS"


class Modals:
    def __init__(self):
        self.opened: list[dict] = []

    def open_view(self, trigger_id, view):
        self.opened.append(view)
        return "V1", "h1"


def flow_with(text: str):
    store, slack, modals = MemoryStore(), RecordingPoster(), Modals()
    store.create_round(7, 70, [("A", "m1")])
    store.save_generated("t7r1A", text, None)
    return SendFlow(store, slack, modals, None), slack, modals  # type: ignore[arg-type]


def test_a_draft_too_long_for_slacks_text_box_is_refused_with_what_to_do():
    flow, slack, modals = flow_with("word " * 700)  # 3,500 characters
    assert flow.open_modal("1.trigger", "UGRACE", CHANNEL, None, "t7r1A") is None
    assert modals.opened == []
    [told] = slack.calls_to("ephemeral")
    assert told.text == TOO_LONG.format(label="A", limit=3000) and "copy it from the thread" in told.text


def test_a_failed_public_reply_reopens_as_a_public_reply_with_its_text():
    flow, _, modals = flow_with("Restart it.")
    flow.allow_public = True
    failed = SendRecord(
        "t7r1As1",
        7,
        "t7r1",
        "t7r1A",
        "UGRACE",
        SEND_FAILED,
        True,
        True,
        "h",
        T0,
        edited_text="Restart it now.",
    )
    flow.store.record_send(failed)
    opened = flow.open_modal("1.trigger", "UGRACE", CHANNEL, None, "t7r1A")
    assert opened is not None and opened.text == "Restart it now." and opened.state.restored
    kind = next(b for b in modals.opened[0]["blocks"] if b["block_id"] == KIND_BLOCK)
    assert kind["element"]["initial_option"]["value"] == "public"
    assert opened.state.shown_hash == text_hash("Restart it.")  # "edited" still means: not the draft
    assert ModalState.from_metadata(opened.state.to_metadata()) == opened.state


def test_an_unknown_draft_opens_nothing():
    flow, slack, modals = flow_with("Hello")
    assert flow.open_modal("1.trigger", "UGRACE", CHANNEL, None, "t9r1A") is None
    assert modals.opened == [] and "not known" in slack.calls_to("ephemeral")[0].text


def test_the_body_hash_ignores_how_zendesk_rewraps_whitespace():
    assert body_hash("Hi Maria,\n\nRestart it. ") == body_hash("Hi Maria,\nRestart it.")
    assert body_hash("Restart it.") != body_hash("Restart it!")


def test_the_newest_public_comment_after_the_answered_one_is_stale_news():
    asked = Comment(1, 100, "Stuck at 99%", True, T0, True)
    note = Comment(2, 5, "internal", False, T0.replace(hour=10), False)
    reply = Comment(3, 100, "Also the restore fails", True, T0.replace(hour=11), True)
    ticket = Ticket(7, "s", "open", 100, "Maria", T0, "u", (asked, note, reply))
    assert newer_public_comment(ticket, asked) == reply
    assert newer_public_comment(ticket, reply) is None and newer_public_comment(ticket, None) is None
