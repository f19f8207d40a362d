"""SendFlow's decisions without HTTP: what it refuses before Slack or Zendesk is asked (the whole
flow over HTTP is tests/test_send_modal.py)."""

import json

from bot.slack.send_views import KIND_BLOCK, TEXT_ACTION, ModalState, text_hash
from bot.slack.sending import TOO_LONG, SendFlow, body_hash, newer_public_comment
from bot.store.memory import MemoryStore
from core.domain import SEND_FAILED, Agent, ChatUser, Comment, SendRecord, Ticket
from core.ports import GatewayError
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


class DownZendesk:
    """Zendesk that knows the agent but cannot read the ticket: every send fails, nothing is added."""

    def agent_by_email(self, email):
        return Agent(501, "Grace Hopper", email)

    def fetch_ticket(self, ticket_id):
        raise GatewayError("Zendesk answered HTTP 503")


class ProfileModals(Modals):
    def update_view(self, view_id, view, view_hash=None):
        self.opened.append(view)

    def user_profile(self, user):
        return ChatUser(user, "grace.h", "grace@example.com")


def failed_edit(typed: str, contact_email: str = "jo@example.com") -> tuple[SendFlow, str]:
    """The agent's edit, submitted before the dialog knew who they are, then not sent."""
    store = MemoryStore()
    store.create_round(7, 70, [("A", "m1")])
    store.save_generated("t7r1A", "Hi <NAME>,\nRestart it.\nBest regards,\n<NAME>", None)
    store.save_ticket_contact(7, "Jo Customer", contact_email)
    flow = SendFlow(store, RecordingPoster(), ProfileModals(), DownZendesk())  # type: ignore[arg-type]
    opened = flow.open_modal("1.trigger", "UGRACE", CHANNEL, None, "t7r1A")
    assert opened is not None
    view = {
        "private_metadata": opened.state.to_metadata(),
        "state": {"values": {opened.state.text_block: {TEXT_ACTION: {"value": typed}}}},
    }
    answer, deliver = flow.submit("UGRACE", "grace.h", view)
    assert answer is None and deliver is not None
    assert deliver().state == SEND_FAILED
    return flow, typed


def test_a_reopened_edit_is_signed_with_the_agents_name_never_the_slack_handle():
    flow, _ = failed_edit("Hi <NAME>,\nRestart it now, please.\nBest regards,\n<NAME>")
    again = flow.open_modal("2.trigger", "UGRACE", CHANNEL, None, "t7r1A")
    assert again is not None and again.text == "Hi Jo,\nRestart it now, please.\nBest regards,\nGrace Hopper"


def test_an_edit_that_filling_would_make_too_long_reopens_as_typed():
    typed = ("Restart the agent. " * 157)[:2990] + " <EMAIL>"  # 2,998 typed; filled, over 3,000
    flow, _ = failed_edit(typed, contact_email="jo.customer.with.a.long.address@example.com")
    again = flow.open_modal("2.trigger", "UGRACE", CHANNEL, None, "t7r1A")
    assert again is not None and again.text == typed  # the draft can still be sent; filled at Send


class ReadableZendesk(DownZendesk):
    def fetch_ticket(self, ticket_id):
        return Ticket(7, "s", "open", 100, "Jo Customer", T0, "u", (), requester_email="jo@example.com")


def test_a_draft_that_the_ticket_check_fills_past_the_text_box_is_never_cut():
    """The dialog opened with the sign-off unfilled; the agent's name would push it past 3,000."""
    store = MemoryStore()
    store.create_round(7, 70, [("A", "m1")])
    body = ("Restart the agent. " * 160)[:2960]
    store.save_generated("t7r1A", f"Hi <NAME>,\n{body}\nBest regards,\n<NAME>", None)
    store.save_ticket_contact(7, "Jo Customer", "jo@example.com")
    modals = ProfileModals()
    modals.user_profile = lambda user: ChatUser(user, "Grace Bertha Hopper-Lovelace", "grace@example.com")
    zendesk = ReadableZendesk()
    zendesk.agent_by_email = lambda email: Agent(501, "Grace Bertha Hopper-Lovelace of Arlington", email)
    flow = SendFlow(store, RecordingPoster(), modals, zendesk)  # type: ignore[arg-type]
    opened = flow.open_modal("1.trigger", "UGRACE", CHANNEL, None, "t7r1A")
    assert opened is not None and len(opened.text) <= 3000
    flow.check_ticket(opened)
    updated = modals.opened[-1]
    state = ModalState.from_metadata(updated["private_metadata"])
    [box] = [b for b in updated["blocks"] if b["block_id"] == state.text_block]
    shown = box["element"]["initial_value"]
    assert shown == opened.text and shown.startswith("Hi Jo,\n")  # whole, as it opened
    assert shown.endswith("Best regards,\n<NAME>") and len(shown) <= 3000  # signed at Send
    assert "Replace" not in json.dumps(updated["blocks"])  # Send fills it: nothing for the agent to do
