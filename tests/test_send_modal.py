"""Sending a draft through the modal, end to end: the real Bolt app behind the bot's web server,
signed clicks and submissions, slack_sdk against the Slack stand-in (views.open, views.update,
users.info) and zenpy against the Zendesk stand-in (user search, comments with author_id)."""

import json
import threading
from pathlib import Path

import pytest
import requests

from bot.config import load_settings
from bot.slack.send_views import CONFIRM_BLOCK, KIND_ACTION, KIND_BLOCK, TEXT_ACTION, ModalState
from core.domain import DraftResult
from draftdesk.app import build
from integrations.standins.slack_requests import (
    block_action_body,
    event_body,
    signed_headers,
    view_submission_body,
)
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import DEFAULT_AGENT_ID, FakeZendesk
from tests import waiting
from tests.waiting import drafts_posted

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-send",
    "SLACK_SIGNING_SECRET": "slack-signing-secret",
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "zendesk-token",
}
CHANNEL = "CDRAFTS"
FORM = "application/x-www-form-urlencoded"
DRAFTS = {
    "greets": "Hi <NAME>,\nPlease restart the backup agent.\nBest regards,\n<NAME>",
    "phone": "Call us at <PHONE> and we will look at it.",
    "plain": "Restart the backup agent, then run it again.",
}
GRACE = (501, "Grace Hopper", "grace@example.com")


class FixedDrafts:
    """A backend whose every model writes its fixed draft (the draft texts are the subject here)."""

    def count_tokens(self, model_name, text):
        return len(text.split())

    def context_limit(self, model_name):
        return 2048

    def generate(self, prompts):
        return [DraftResult(model, DRAFTS[model]) for model in prompts]

    def generate_many(self, batch):
        return [self.generate(prompts) for prompts in batch]


def write_config(tmp_path: Path, slack: FakeSlack, zendesk: FakeZendesk, public: bool) -> Path:
    models = "".join(f'\n[[models]]\nname = "{name}"\nbase_model = "stub/{name}"\n' for name in DRAFTS)
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[slack]
mode = "http"
channel = "{CHANNEL}"
api_url = "{slack.api_url}"
[server]
host = "127.0.0.1"
port = 0
[zendesk]
url = "{zendesk.url}"
allow_public_replies = {str(public).lower()}
[intake]
mode = "poll"
poll_interval_seconds = 86400
[digest]
users = ["ULEAD"]
[storage]
path = "store.json"
{models}"""
    )
    return path


class Bot:
    def __init__(self, app, slack: FakeSlack, zendesk: FakeZendesk) -> None:
        self.app, self.slack, self.zendesk = app, slack, zendesk
        self.base = f"http://127.0.0.1:{app.web.port}/slack/events"

    def draft(self, model: str):
        return next(d for d in self.app.store.drafts_for_ticket(7) if d.model == model)

    def post(self, body: str) -> requests.Response:
        return requests.post(
            self.base,
            data=body.encode(),
            headers=signed_headers(SECRETS["SLACK_SIGNING_SECRET"], body, FORM),
            timeout=10,
        )

    def click_send(self, user: str, model: str) -> dict:
        """Clicks "Send to Zendesk" and returns the modal once the bot has checked the ticket."""
        draft = self.draft(model)
        opened = len(self.slack.calls_to("views.open"))
        updated = len(self.slack.calls_to("views.update"))
        _, parent_ts = self.app.store.ticket_thread(7)
        response = self.post(
            block_action_body(user, CHANNEL, draft.vote_ts, parent_ts, "send_to_zendesk", draft.id)
        )
        assert response.status_code == 200
        waiting.wait_until(lambda: len(self.slack.calls_to("views.open")) > opened, 10, "views.open")
        assert self.slack.calls_to("views.open")[-1].response["ok"] is True  # within the trigger's 3 s
        waiting.wait_until(lambda: len(self.slack.calls_to("views.update")) > updated, 10, "views.update")
        return self.slack.calls_to("views.update")[-1].response["view"]

    def submit(
        self, user: str, view: dict, text: str | None = None, public: bool = False, again: bool = False
    ):
        state = ModalState.from_metadata(view["private_metadata"])
        text_block = next(b for b in view["blocks"] if b.get("block_id") == state.text_block)
        value = text_block["element"]["initial_value"] if text is None else text
        values = {state.text_block: {TEXT_ACTION: {"type": "plain_text_input", "value": value}}}
        if public:
            values[KIND_BLOCK] = {
                KIND_ACTION: {"type": "radio_buttons", "selected_option": {"value": "public"}}
            }
        if again:
            values[CONFIRM_BLOCK] = {"again": {"type": "checkboxes", "selected_options": [{"value": "yes"}]}}
        response = self.post(view_submission_body(user, view, values))
        assert response.status_code == 200
        return response.json() if response.content else None

    def wait_for_ephemeral(self, fragment: str, seconds: float) -> str:
        """The text of the first message only the agent sees that holds ``fragment``, once posted."""

        def found() -> str | None:
            texts = (str(c.params.get("text")) for c in self.slack.calls_to("chat.postEphemeral"))
            return next((text for text in texts if fragment in text), None)

        waiting.wait_until(lambda: found() is not None, seconds, f"the agent told {fragment!r}")
        return found() or ""

    def comments_added(self) -> list[dict]:
        return self.zendesk.comments(7)[1:]


@pytest.fixture(params=[False], ids=["internal-only"])
def bot(request, tmp_path):
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        zendesk.add_user(*GRACE, role="agent")
        zendesk.add_ticket(7, "Backup stuck", 100, comments=[(100, "My backup is stuck at 99%.", True)])
        slack.add_user("UGRACE", "Grace B. Hopper", GRACE[2])
        slack.add_user("UADA", "Ada Lovelace", "ada@example.com")  # no Zendesk agent has her address
        app = build(
            load_settings(write_config(tmp_path, slack, zendesk, request.param), env=SECRETS), FixedDrafts()
        )
        app.start()
        try:
            app.store.enqueue(7, "test")
            app.worker.wake.set()
            waiting.wait_until(lambda: drafts_posted(app.store, 7), 30, "drafts posted")
            yield Bot(app, slack, zendesk)
        finally:
            app.stop()


def test_the_thread_shows_filled_and_highlighted_placeholders(bot):
    greets = bot.slack.find_message(CHANNEL, bot.draft("greets").vote_ts)
    assert "Hi Maria," in json.dumps(greets["blocks"])  # the requester's first name, filled
    phone = bot.slack.find_message(CHANNEL, bot.draft("phone").vote_ts)
    assert "`&lt;PHONE&gt;`" in json.dumps(phone["blocks"])  # left for the agent, highlighted


def test_send_opens_the_modal_and_adds_a_note_in_the_agents_name(bot):
    view = bot.click_send("UGRACE", "greets")
    state = ModalState.from_metadata(view["private_metadata"])
    [text] = [b for b in view["blocks"] if b["block_id"] == state.text_block]
    filled = "Hi Maria,\nPlease restart the backup agent.\nBest regards,\nGrace Hopper"
    assert text["element"]["initial_value"] == filled
    assert KIND_BLOCK not in json.dumps(view["blocks"])  # public replies are off
    assert bot.submit("UGRACE", view) is None  # the modal closes
    waiting.wait_until(lambda: len(bot.comments_added()) == 1, 10, "comment added")
    [comment] = bot.comments_added()
    assert (comment["author_id"], comment["public"], comment["body"]) == (GRACE[0], False, filled)
    waiting.wait_until(
        lambda: (
            "Sent by" in json.dumps(bot.slack.find_message(CHANNEL, bot.draft("greets").vote_ts)["blocks"])
        ),
        10,
    )
    status = json.dumps(bot.slack.find_message(CHANNEL, bot.draft("greets").vote_ts)["blocks"])
    assert "Sent by <@UGRACE> as an internal note (as is)" in status
    assert [s.state for s in bot.app.store.sends_for_round("t7r1")] == ["sent"]
    _, parent_ts = bot.app.store.ticket_thread(7)
    answered = f"Answered: Draft {bot.draft('greets').label} sent by <@UGRACE> as an internal note"
    parent = lambda: json.dumps(bot.slack.find_message(CHANNEL, parent_ts)["blocks"])  # noqa: E731
    waiting.wait_until(lambda: answered in parent(), 10, "the parent marked answered")  # the channel's view
    assert "Backup stuck" in parent()  # the rest of the parent as it was posted


def test_a_note_sent_before_the_agent_is_looked_up_still_goes_out_in_the_agents_name(bot):
    """Sending a draft as it is takes a second; Zendesk's user search may take longer."""
    search = bot.zendesk.hold_reads("/api/v2/users/search.json")
    draft = bot.draft("greets")
    _, parent_ts = bot.app.store.ticket_thread(7)
    clicked = bot.post(
        block_action_body("UGRACE", CHANNEL, draft.vote_ts, parent_ts, "send_to_zendesk", draft.id)
    )
    assert clicked.status_code == 200
    waiting.wait_until(lambda: bot.slack.calls_to("views.open"), 10, "views.open")
    view = bot.slack.calls_to("views.open")[-1].response["view"]
    assert "Checking the ticket in Zendesk" in json.dumps(view["blocks"])  # the look-up is still running
    assert bot.submit("UGRACE", view) is None
    search.set()
    waiting.wait_until(lambda: len(bot.comments_added()) == 1, 10, "comment added")
    [comment] = bot.comments_added()
    signed = (
        "Hi Maria,\nPlease restart the backup agent.\nBest regards,\nGrace Hopper"  # not her Slack handle
    )
    assert comment["author_id"] == GRACE[0] and comment["body"] == signed
    waiting.wait_until(lambda: bot.app.store.sends_for_round("t7r1")[0].state == "sent", 10, "send recorded")
    [send] = bot.app.store.sends_for_round("t7r1")
    assert send.author_id == GRACE[0]


def test_a_zendesk_outage_during_a_send_is_told_after_a_few_quick_retries(bot):
    """The agent waits on the dialog: not the worker's five patient retries (about two minutes)."""
    view = bot.click_send("UGRACE", "plain")
    reads_before = len(bot.zendesk.requests_to("GET", "/api/v2/tickets/7.json"))
    bot.zendesk.fail_next("/api/v2/tickets/7.json", 503, times=50)
    assert bot.submit("UGRACE", view) is None
    bot.wait_for_ephemeral("Could not read ticket #7", 30)
    assert len(bot.zendesk.requests_to("GET", "/api/v2/tickets/7.json")) - reads_before == 3  # 1 + 2 retries
    assert bot.comments_added() == []


def test_a_send_that_fails_reopens_with_the_agents_edits(bot):
    """Rewriting a draft takes minutes; an outage must not throw the work away."""
    view = bot.click_send("UGRACE", "plain")
    edited = "Please restart the backup agent, then run the backup again tonight."
    bot.zendesk.fail_next("/api/v2/tickets/7.json", 503, times=3)  # the send's read and its 2 retries
    assert bot.submit("UGRACE", view, text=edited) is None
    told = bot.wait_for_ephemeral("Could not read ticket #7", 30)
    assert "Your edits are kept" in told and bot.comments_added() == []

    def offered(view: dict) -> str:
        block = ModalState.from_metadata(view["private_metadata"]).text_block
        return next(b for b in view["blocks"] if b["block_id"] == block)["element"]["initial_value"]

    again = bot.click_send("UGRACE", "plain")
    assert offered(again) == edited
    assert "your edited text from the send that failed" in json.dumps(again["blocks"])
    assert offered(bot.click_send("UADA", "plain")) == DRAFTS["plain"]  # her edits are hers alone
    assert bot.submit("UGRACE", again) is None
    waiting.wait_until(lambda: len(bot.comments_added()) == 1, 10, "comment added")
    assert bot.comments_added()[0]["body"] == edited
    waiting.wait_until(lambda: bot.app.store.sends_for_round("t7r1")[-1].state == "sent", 10, "send recorded")
    failed, sent = bot.app.store.sends_for_round("t7r1")
    assert (failed.state, sent.edited, sent.edited_text) == ("failed", True, None)  # no copy once sent
    assert offered(bot.click_send("UGRACE", "plain")) == DRAFTS["plain"]  # sent: the draft again


def test_an_edited_draft_from_an_agent_without_zendesk_account_says_who_sent_it(bot):
    view = bot.click_send("UADA", "plain")
    assert "No Zendesk agent has your Slack e-mail" in json.dumps(view["blocks"])
    assert bot.submit("UADA", view, text="Restart the agent. It will pick up where it stopped.") is None
    waiting.wait_until(lambda: len(bot.comments_added()) == 1, 10, "comment added")
    [comment] = bot.comments_added()
    assert comment["author_id"] == DEFAULT_AGENT_ID
    assert (
        comment["body"]
        == "Restart the agent. It will pick up where it stopped.\n\n(Sent from Slack by Ada Lovelace)"
    )
    waiting.wait_until(
        lambda: (
            "(edited)" in json.dumps(bot.slack.find_message(CHANNEL, bot.draft("plain").vote_ts)["blocks"])
        ),
        10,
    )


def test_empty_text_and_placeholders_are_refused_in_the_modal(bot):
    view = bot.click_send("UGRACE", "phone")
    block = ModalState.from_metadata(view["private_metadata"]).text_block
    assert "Replace `&lt;PHONE&gt;`" in json.dumps(view["blocks"])
    answer = bot.submit("UGRACE", view)
    assert answer["response_action"] == "errors" and "<PHONE>" in answer["errors"][block]
    answer = bot.submit("UGRACE", view, text="   ")
    assert answer["response_action"] == "errors" and "empty" in answer["errors"][block]
    answer = bot.submit("UGRACE", view, public=True, text="Call us at 555-0100.")
    assert answer["response_action"] == "errors" and "allow_public_replies" in answer["errors"][block]
    assert bot.comments_added() == [] and bot.app.store.sends_for_round("t7r1") == []


def test_two_agents_submitting_at_once_add_one_comment_and_a_second_send_needs_confirmation(bot):
    views = {user: bot.click_send(user, "plain") for user in ("UGRACE", "UADA")}
    answers: dict[str, object] = {}
    start = threading.Barrier(2)

    def submit(user):
        start.wait()
        answers[user] = bot.submit(user, views[user])

    threads = [threading.Thread(target=submit, args=(u,)) for u in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [(winner, _)] = [(u, a) for u, a in answers.items() if a is None]
    [(loser, asked)] = [(u, a) for u, a in answers.items() if a is not None]
    waiting.wait_until(lambda: len(bot.comments_added()) == 1, 10, "one comment")
    assert asked["response_action"] == "update"
    # The winner's send is recorded before the loser's check: sent, or still being sent.
    label = bot.draft("plain").label
    told = json.dumps(asked["view"]["blocks"])
    assert f"Draft {label} was already sent by <@{winner}>" in told or f"Draft {label} is being sent" in told
    assert CONFIRM_BLOCK in json.dumps(asked["view"]["blocks"])
    # Unticked, the confirmation box is an error; ticked, the second comment goes in.
    again_view = {**asked["view"], "id": "V0AGAIN"}
    answer = bot.submit(loser, again_view)
    assert answer["response_action"] == "errors" and CONFIRM_BLOCK in answer["errors"]
    assert bot.submit(loser, again_view, again=True) is None
    waiting.wait_until(lambda: len(bot.comments_added()) == 2, 10, "second comment")
    assert [s.user for s in bot.app.store.sends_for_round("t7r1")] == [winner, loser]


def test_a_newer_customer_comment_is_shown_and_a_solved_ticket_refused(bot):
    bot.zendesk.add_comment(7, 100, "Also, the restore fails at 40%.", True)
    view = bot.click_send("UGRACE", "plain")
    shown = json.dumps(view["blocks"])
    assert "The customer wrote after this draft was made" in shown and "restore fails at 40%" in shown
    bot.zendesk.set_status(7, "solved")
    refused = bot.click_send("UGRACE", "plain")
    assert "submit" not in refused and "the ticket is solved" in json.dumps(refused["blocks"])


def test_a_customer_comment_after_the_dialog_opened_stops_the_send_until_it_is_seen(bot):
    view = bot.click_send("UGRACE", "plain")
    bot.zendesk.add_comment(7, 100, "Never mind, it finished on its own.", True)
    assert bot.submit("UGRACE", view) is None
    told = bot.wait_for_ephemeral("after you opened the dialog", 10)
    sent = lambda: [c for c in bot.comments_added() if c["author_id"] != 100]  # noqa: E731
    assert "Never mind, it finished on its own." in told and sent() == []
    again = bot.click_send("UGRACE", "plain")  # now the dialog shows it, and the agent may send
    assert "Never mind, it finished on its own." in json.dumps(again["blocks"])
    assert bot.submit("UGRACE", again) is None
    waiting.wait_until(lambda: len(sent()) == 1, 10, "comment added")


@pytest.mark.parametrize("bot", [True], ids=["public-allowed"], indirect=True)
def test_a_public_reply_when_allowed(bot):
    view = bot.click_send("UGRACE", "plain")
    [kind] = [b for b in view["blocks"] if b["block_id"] == KIND_BLOCK]
    assert kind["element"]["initial_option"]["value"] == "internal"  # the default
    assert [o["value"] for o in kind["element"]["options"]] == ["internal", "public"]
    assert bot.submit("UGRACE", view, public=True) is None
    waiting.wait_until(lambda: len(bot.comments_added()) == 1, 10, "reply added")
    [reply] = bot.comments_added()
    assert (reply["public"], reply["author_id"], reply["body"]) == (True, GRACE[0], DRAFTS["plain"])
    # Without a Zendesk account of their own, an agent sends no public reply: the customer would get
    # it from the API user, signed "sent from Slack".
    ada_view = bot.click_send("UADA", "greets")
    assert "No Zendesk agent has your Slack e-mail" in json.dumps(ada_view["blocks"])
    answer = bot.submit("UADA", ada_view, public=True)
    block = ModalState.from_metadata(ada_view["private_metadata"]).text_block
    assert answer["response_action"] == "errors" and "matches no Zendesk agent" in answer["errors"][block]
    assert len(bot.comments_added()) == 1
    waiting.wait_until(
        lambda: (
            "as a public reply (as is)"
            in json.dumps(bot.slack.find_message(CHANNEL, bot.draft("plain").vote_ts))
        ),
        10,
    )


def test_app_home_lists_what_the_agent_rated_sent_and_has_left_to_rate(bot):
    def home(user):
        published = len(bot.slack.calls_to("views.publish"))
        body = event_body({"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"})
        response = requests.post(
            bot.base,
            data=body.encode(),
            headers=signed_headers(SECRETS["SLACK_SIGNING_SECRET"], body, "application/json"),
            timeout=10,
        )
        assert response.status_code == 200
        waiting.wait_until(lambda: len(bot.slack.calls_to("views.publish")) > published, 10, "views.publish")
        return "\n".join(block["text"]["text"] for block in bot.slack.homes[user]["blocks"])

    greets, plain = bot.draft("greets"), bot.draft("plain")
    _, parent_ts = bot.app.store.ticket_thread(7)
    workspace = "https://fake-team.slack.com/archives/CDRAFTS"  # from auth.test: each line opens its thread
    thread_link = f"{workspace}/p{parent_ts.replace('.', '')}"
    assert f"<{thread_link}|Ticket #7>: 3 drafts to rate" in home("UADA")
    bot.post(block_action_body("UADA", CHANNEL, greets.vote_ts, parent_ts, "rate_4", greets.id))
    waiting.wait_until(lambda: len(bot.app.store.votes()) == 1, 10, "vote")
    shown = home("UADA")
    draft_link = f"{workspace}/p{greets.vote_ts.replace('.', '')}?thread_ts={parent_ts}&cid=CDRAFTS"
    assert f"<{draft_link}|Ticket #7, Draft {greets.label}>: 4/5" in shown
    assert f"<{thread_link}|Ticket #7>: 2 drafts to rate" in shown
    assert not any(model in shown for model in DRAFTS) and "Standings" not in shown  # blind
    view = bot.click_send("UADA", "plain")
    bot.submit("UADA", view)
    waiting.wait_until(lambda: bot.app.store.draft(plain.id).sent_to_zendesk_by == "UADA", 10, "sent")
    shown = home("UADA")
    assert f"Ticket #7, Draft {plain.label}>" in shown and "Nothing waiting" in shown  # sent: not waiting
    lead = home("ULEAD")
    assert "Standings this week" in lead and "*greets*: 1 rating, mean 4.00, 100% positive" in lead
