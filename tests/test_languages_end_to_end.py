"""Issue 28 through the running bot: real zenpy and slack_sdk against the loopback stand-ins. A
German customer's ticket gets German article links, German passages for the grounded model, drafts
only from the models that write German, and one line in the thread saying no other model does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import StartupError
from core.domain import DraftResult
from draftdesk.app import build
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from tests import waiting
from tests.waiting import drafts_posted

SECRETS = {
    "SLACK_BOT_TOKEN": "x",
    "SLACK_SIGNING_SECRET": "s",
    "ZENDESK_EMAIL": "a@b.c",
    "ZENDESK_API_TOKEN": "t",
}


class RecordingDrafts:
    def __init__(self) -> None:
        self.prompts: dict[str, str] = {}

    def count_tokens(self, model_name: str, text: str) -> int:
        return len(text.split())

    def context_limit(self, model_name: str) -> int:
        return 2048

    def generate_many(self, batch):
        for prompts in batch:
            self.prompts.update(prompts)
        return [[DraftResult(model, f"Antwort von {model}.") for model in prompts] for prompts in batch]


def config(tmp_path: Path, slack: FakeSlack, zendesk: FakeZendesk) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[slack]
mode = "http"
channel = "CDRAFTS"
api_url = "{slack.api_url}"
[server]
host = "127.0.0.1"
port = 0
[zendesk]
url = "{zendesk.url}"
[intake]
mode = "poll"
poll_interval_seconds = 86400
[grounding]
enabled = true
locales = ["en-us", "de"]
[languages]
default = "en"
[[models]]
name = "llama2-7b-ft"
base_model = "stub/a"
languages = ["en"]
[[models]]
name = "llama2-7b-ft-de"
base_model = "stub/b"
languages = ["de"]
grounding = true
[[models]]
name = "llama2-7b"
base_model = "stub/c"
"""
    )
    return path


def test_a_german_ticket_is_answered_from_german_sources_by_the_models_that_write_german(tmp_path):
    with FakeZendesk() as zendesk, FakeSlack() as slack:
        zendesk.add_article(1, "Backup stuck at 99%", "<p>A backup at 99% waits for a file lock.</p>")
        zendesk.add_article(
            1,
            "Sicherung hängt bei 99%",
            "<p>Eine Sicherung bei 99% wartet auf eine Dateisperre. Schließen Sie Outlook.</p>",
            locale="de",
        )
        zendesk.add_user(100, "Jonas Weber", "jonas@example.com", locale="de")
        body = "Hallo, meine Sicherung hängt seit gestern bei 99%. Wartet sie auf eine Dateisperre?"
        zendesk.add_ticket(7, "Sicherung hängt", 100, comments=[(100, body, True)])
        backend = RecordingDrafts()
        app = build(load_settings(config(tmp_path, slack, zendesk), env=SECRETS), backend)
        app.start()
        try:
            waiting.wait_until(lambda: app.help_center is not None and len(app.help_center) == 2, 10, "index")
            app.store.enqueue(7, "test")
            app.worker.wake.set()
            waiting.wait_until(lambda: drafts_posted(app.store, 7, count=2), 30, "drafts posted")
            channel, parent_ts = app.store.ticket_thread(7)
            parent = str(slack.find_message(channel, parent_ts)["blocks"])
            assert "/hc/de/articles/1-" in parent and "/hc/en-us/" not in parent
            assert sorted(backend.prompts) == ["llama2-7b", "llama2-7b-ft-de"]
            assert "Schließen Sie Outlook" in backend.prompts["llama2-7b-ft-de"]
            assert "Write the reply in German" in backend.prompts["llama2-7b"]
            replies = [m.get("text", "") for m in slack.replies(channel, parent_ts)]
            line = (
                "This ticket is in German: no other model writes German; the 2 drafts below are all there is."
            )
            assert line in replies
            assert app.store.round_for(7, app.store.drafts_for_ticket(7)[0].comment_id).language == "de"
        finally:
            app.stop()


def test_a_language_the_detector_does_not_know_stops_the_start_with_one_line(tmp_path):
    with FakeZendesk() as zendesk, FakeSlack() as slack:
        path = config(tmp_path, slack, zendesk)
        path.write_text(
            path.read_text().replace('default = "en"', 'default = "en"\ndetect = ["en", "de", "qq"]')
        )
        with pytest.raises(StartupError) as caught:
            build(load_settings(path, env=SECRETS), RecordingDrafts())
    assert str(caught.value).startswith("[languages] detect: the detector does not know qq (it knows ")
