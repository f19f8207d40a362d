"""Signed Slack requests whose fields have the wrong shape (an ``item`` that is a string, an
``actions`` list of strings, a submission without ``state``...): over real HTTP against the running
bot, each is answered 200 (events, which Slack would otherwise send again) or 400 (interactivity),
records nothing, and leaves one log line, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
import requests

from bot.config import load_settings
from bot.slack.send_views import CALLBACK_ID, TEXT_ACTION, ModalState
from draftdesk.app import build
from integrations.standins.slack_requests import (
    block_action_body,
    event_body,
    reaction_event,
    signed_headers,
    view_submission_body,
)
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from tests import waiting
from tests.test_send_modal import CHANNEL, SECRETS, FixedDrafts, write_config
from tests.waiting import drafts_posted

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
EVENT, INTERACTIVE = 200, 400  # what a malformed request of each kind is answered
ANSWERS = ("chat.postEphemeral", "views.open", "views.publish")  # how the bot answers an agent


class Bot:
    def __init__(self, app: Any, slack: FakeSlack) -> None:
        self.app, self.slack = app, slack
        self.url = f"http://127.0.0.1:{app.web.port}/slack/events"
        self.draft = next(d for d in app.store.drafts_for_ticket(7) if d.model == "plain")

    def post(self, body: str, content_type: str) -> requests.Response:
        headers = signed_headers(SECRETS["SLACK_SIGNING_SECRET"], body, content_type)
        return requests.post(self.url, data=body.encode(), headers=headers, timeout=10)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    tmp_path = tmp_path_factory.mktemp("shapes")
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        zendesk.add_ticket(7, "Backup stuck", 100, comments=[(100, "My backup is stuck at 99%.", True)])
        app = build(load_settings(write_config(tmp_path, slack, zendesk, False), env=SECRETS), FixedDrafts())
        app.start()
        try:
            app.store.enqueue(7, "test")
            app.worker.wake.set()
            waiting.wait_until(lambda: drafts_posted(app.store, 7), 30, "drafts posted")
            yield Bot(app, slack)
        finally:
            app.stop()


# ---- the malformed requests: each built from a well-formed one, then one field spoiled ------------


def reaction(spoil: Callable[[dict], None], kind: str = "reaction_added") -> Callable[[Bot], str]:
    def body(bot: Bot) -> str:
        event = reaction_event(kind, "UAGENT2", "two", CHANNEL, bot.draft.vote_ts or "")
        spoil(event)
        return event_body(event)

    return body


def event(fields: dict[str, Any]) -> Callable[[Bot], str]:
    return lambda bot: event_body(fields)


def envelope(spoil: Callable[[dict], None]) -> Callable[[Bot], str]:
    """An event_callback whose envelope (not its event) is spoiled."""

    def body(bot: Bot) -> str:
        data = json.loads(event_body(reaction_event("reaction_added", "UAGENT2", "two", CHANNEL, "1.1")))
        spoil(data)
        return json.dumps(data)

    return body


def click(spoil: Callable[[dict], None], action_id: str = "rate_2") -> Callable[[Bot], str]:
    def body(bot: Bot) -> str:
        draft = bot.draft
        form = block_action_body("UAGENT2", CHANNEL, draft.vote_ts or "", None, action_id, draft.id)
        payload = json.loads(parse_qs(form)["payload"][0])
        spoil(payload)
        return urlencode({"payload": json.dumps(payload)})

    return body


def submission(spoil: Callable[[dict], None]) -> Callable[[Bot], str]:
    def body(bot: Bot) -> str:
        draft = bot.draft
        state = ModalState(draft.id, CHANNEL, None, "hash", ())
        view = {
            "id": "V1",
            "type": "modal",
            "callback_id": CALLBACK_ID,
            "private_metadata": state.to_metadata(),
        }
        values = {state.text_block: {TEXT_ACTION: {"type": "plain_text_input", "value": "Restart it."}}}
        payload = json.loads(parse_qs(view_submission_body("UAGENT2", view, values))["payload"][0])
        spoil(payload)
        return urlencode({"payload": json.dumps(payload)})

    return body


def put(path: str, value: Any) -> Callable[[dict], None]:
    """Sets ``a.b.c`` (list indexes as numbers) to ``value``; ``...`` deletes it."""

    def spoil(data: dict) -> None:
        *parents, last = path.split(".")
        for key in parents:
            data = data[int(key)] if isinstance(data, list) else data[key]
        if value is ...:
            del data[last]
        elif isinstance(data, list):
            data[int(last)] = value
        else:
            data[last] = value

    return spoil


MALFORMED: dict[str, tuple[Callable[[Bot], str], str, int]] = {
    "reaction item a string": (reaction(put("item", "C1/1.1")), JSON, EVENT),
    "reaction item missing": (reaction(put("item", ...)), JSON, EVENT),
    "reaction item null": (reaction(put("item", None)), JSON, EVENT),
    "reaction item a list": (reaction(put("item", [{"type": "message"}])), JSON, EVENT),
    "reaction not a string": (reaction(put("reaction", ["two"])), JSON, EVENT),
    "reaction a number": (reaction(put("reaction", 2)), JSON, EVENT),
    "reaction item ts a list": (reaction(put("item.ts", ["1.1"])), JSON, EVENT),
    "reaction item type an object": (reaction(put("item.type", {"message": True})), JSON, EVENT),
    "reaction item channel a number": (reaction(put("item.channel", 5)), JSON, EVENT),
    "reaction user a number": (reaction(put("user", 5)), JSON, EVENT),
    "removed reaction item a string": (reaction(put("item", "C1/1.1"), "reaction_removed"), JSON, EVENT),
    "removed reaction a list": (reaction(put("reaction", ["two"]), "reaction_removed"), JSON, EVENT),
    "home opened user a number": (event({"type": "app_home_opened", "user": 5, "tab": "home"}), JSON, EVENT),
    "home opened tab a list": (
        event({"type": "app_home_opened", "user": "U1", "tab": ["home"]}),
        JSON,
        EVENT,
    ),
    "message channel a number": (event({"type": "message", "channel": 5, "text": "hi"}), JSON, EVENT),
    "message user a number": (event({"type": "message", "user": 5, "text": "hi"}), JSON, EVENT),
    "changed message a string": (
        event({"type": "message", "subtype": "message_changed", "channel": CHANNEL, "message": "hi"}),
        JSON,
        EVENT,
    ),
    "message thread_ts a list": (event({"type": "message", "thread_ts": [], "text": "hi"}), JSON, EVENT),
    "event a string": (envelope(put("event", "prototype")), JSON, EVENT),
    "event a number": (envelope(put("event", 5)), JSON, EVENT),
    "event type a list": (envelope(put("event.type", ["reaction_added"])), JSON, EVENT),
    "authorizations a string": (envelope(put("authorizations", "x")), JSON, EVENT),
    "authorization a string": (envelope(put("authorizations", ["x"])), JSON, EVENT),
    "team a number": (envelope(put("team", 5)), JSON, EVENT),
    "actions missing": (click(put("actions", ...)), FORM, INTERACTIVE),
    "actions empty": (click(put("actions", [])), FORM, INTERACTIVE),
    "actions a string": (click(put("actions", "rate_2")), FORM, INTERACTIVE),
    "action a string": (click(put("actions", ["rate_2"])), FORM, INTERACTIVE),
    "action_id a number": (click(put("actions.0.action_id", 2)), FORM, INTERACTIVE),
    "action_id missing": (click(put("actions.0.action_id", ...)), FORM, INTERACTIVE),
    "rating value a list": (click(put("actions.0.value", ["t7r1C"])), FORM, INTERACTIVE),
    "send value an object": (click(put("actions.0.value", {}), "send_to_zendesk"), FORM, INTERACTIVE),
    "reason selected_option a string": (
        click(lambda p: p["actions"].__setitem__(0, _reason(p, "wrong_facts"))),
        FORM,
        INTERACTIVE,
    ),
    "reason block_id a number": (
        click(lambda p: p["actions"].__setitem__(0, {**_reason(p, {"value": "wrong_facts"}), "block_id": 5})),
        FORM,
        INTERACTIVE,
    ),
    "action user a string": (click(put("user", "UAGENT2")), FORM, INTERACTIVE),
    "action channel a number": (click(put("channel", 5)), FORM, INTERACTIVE),
    "trigger_id a number": (click(put("trigger_id", 5), "send_to_zendesk"), FORM, INTERACTIVE),
    "submission without state": (submission(put("view.state", ...)), FORM, INTERACTIVE),
    "submission state a string": (submission(put("view.state", "x")), FORM, INTERACTIVE),
    "submission values a list": (submission(put("view.state.values", [])), FORM, INTERACTIVE),
    "submission block a string": (submission(put("view.state.values.draft_text", "x")), FORM, INTERACTIVE),
    "submission value a number": (
        submission(put(f"view.state.values.draft_text.{TEXT_ACTION}.value", 5)),
        FORM,
        INTERACTIVE,
    ),
    "submission metadata a number": (submission(put("view.private_metadata", 5)), FORM, INTERACTIVE),
    "submission callback_id a list": (submission(put("view.callback_id", [CALLBACK_ID])), FORM, INTERACTIVE),
    "submission user a string": (submission(put("user", "UAGENT2")), FORM, INTERACTIVE),
}


def _reason(payload: dict, selected: Any) -> dict:
    draft_id = payload["actions"][0]["value"]
    return {
        "type": "static_select",
        "action_id": "vote_reason",
        "block_id": f"vote_reason:{draft_id}",
        "selected_option": selected,
        "action_ts": "1.1",
    }


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_signed_request_of_the_wrong_shape_is_answered_records_nothing_and_logs_one_line(
    bot: Bot, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    build_body, content_type, status = MALFORMED[name]
    body = build_body(bot)
    votes, sends = bot.app.store.votes(), bot.app.store.sends_for_round(bot.draft.round_id)
    calls = {method: len(bot.slack.calls_to(method)) for method in ANSWERS}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        response = bot.post(body, content_type)
        assert bot.app.after_ack.wait_idle(10)
    assert response.status_code == status, response.text
    assert bot.app.store.votes() == votes
    assert bot.app.store.sends_for_round(bot.draft.round_id) == sends
    assert {method: len(bot.slack.calls_to(method)) for method in ANSWERS} == calls
    noted = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(noted) == 1, [r.getMessage() for r in noted]
    assert noted[0].exc_info is None and "\n" not in noted[0].getMessage()
    assert "Traceback" not in caplog.text


def test_the_well_formed_requests_they_are_made_from_still_work(bot: Bot) -> None:
    """A guard on the builders above: unspoiled, the same reaction is a vote."""
    response = bot.post(reaction(lambda event: None)(bot), JSON)
    assert response.status_code == 200
    assert bot.app.after_ack.wait_idle(10)
    votes = bot.app.store.votes()
    assert [(v.draft_id, v.rater, v.score, v.source) for v in votes] == [
        (bot.draft.id, "UAGENT2", 2, "reaction")
    ]
    bot.post(reaction(lambda event: None, "reaction_removed")(bot), JSON)
    waiting.wait_until(lambda: bot.app.store.votes() == [], 10, "the vote taken back")


def test_the_issues_reaction_with_a_string_item_is_a_200_and_one_line_naming_the_field(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    body = reaction(put("item", f"{CHANNEL}/{bot.draft.vote_ts}"))(bot)
    with caplog.at_level(logging.INFO):
        response = bot.post(body, JSON)
    assert (response.status_code, response.json()) == (
        200,
        {"ignored": "event.item is a string, not an object"},
    )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "ignored a signed Slack event_callback (reaction_added): event.item is a string, not an object"
    ]
