"""Help-centre sources: the bm25s index read from the Zendesk stand-in through zenpy (incremental by
updated_at, locales, unpublished articles), article links under the ticket's parent message, and
passages only in the prompts of models with grounding = true."""

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.drafting.grounding import HelpCenterIndex, HelpCenterSources
from core.domain import Comment, DraftResult, Ticket
from core.ports import GatewayError
from core.prompt import SOURCES_HEADING
from draftdesk.app import build
from integrations.help_center_index import html_to_text
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk import ZendeskGateway
from tests import waiting
from tests.waiting import drafts_posted

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STUCK = "<p>A backup that stays at <b>99%</b> waits for a file lock.</p><p>Close Outlook &amp; retry.</p>"


def ticket(subject: str, body: str) -> Ticket:
    return Ticket(7, subject, "open", 100, "Maria", T0, "u", (Comment(1, 100, body, True, T0, True),))


@pytest.fixture
def zendesk():
    with FakeZendesk() as fake:
        fake.add_article(1, "Backup stuck at 99%", STUCK, updated_at="2026-01-01T00:00:00Z")
        fake.add_article(
            2, "Restore a file", "<p>Open Restore and pick a date.</p>", updated_at="2026-01-02T00:00:00Z"
        )
        fake.add_article(
            2,
            "Datei wiederherstellen",
            "<p>Öffnen Sie Restore.</p>",
            locale="de",
            updated_at="2026-01-02T00:00:00Z",
        )
        yield fake


def gateway(fake: FakeZendesk) -> ZendeskGateway:
    return ZendeskGateway.from_settings(fake.url, "agent@example.com", "token")


def test_html_becomes_paragraphs_of_text():
    assert html_to_text(STUCK) == "A backup that stays at 99% waits for a file lock.\nClose Outlook & retry."


def test_refresh_reads_each_locale_from_its_own_listing_and_survives_a_restart(tmp_path, zendesk):
    path = tmp_path / "hc.json"
    index = HelpCenterIndex(path, ["en-us"])
    assert index.refresh(gateway(zendesk)) == 2 and len(index) == 2  # the German one is not indexed
    assert zendesk.requests_to("GET", "/api/v2/help_center/en-us/articles.json")
    assert not zendesk.requests_to("GET", "/api/v2/help_center/de/articles.json")
    zendesk.add_article(
        3, "Change the schedule", "<p>Settings, then Schedule.</p>", updated_at="2026-02-01T00:00:00Z"
    )
    zendesk.add_article(2, "Restore a file", "<p>Gone.</p>", updated_at="2026-02-02T00:00:00Z", draft=True)
    reopened = HelpCenterIndex(path, ["en-us"])  # a restart: the articles come from the file
    assert len(reopened) == 2
    assert reopened.refresh(gateway(zendesk)) == 2  # one added, one unpublished
    assert reopened.refresh(gateway(zendesk)) == 0  # nothing changed since
    found = reopened.top_articles(ticket("Backup stuck", "It hangs at 99%, file lock?"), 3)
    assert [a.id for a in found] == [1]  # words shared with no other article: only one match
    assert reopened.top_articles(ticket("Schedule", "How do I change the schedule?"), 3)[0].id == 3
    assert reopened.search("restore", 3) == []  # unpublished articles are no source


def test_each_language_is_searched_in_its_own_articles(tmp_path, zendesk):
    zendesk.add_article(
        1,
        "Sicherung hängt bei 99%",
        "<p>Eine Sicherung, die bei 99% stehen bleibt, wartet auf eine Dateisperre.</p>",
        locale="de",
        updated_at="2026-01-01T00:00:00Z",
    )
    index = HelpCenterIndex(tmp_path / "hc.json", ["en-us", "de"])
    assert index.refresh(gateway(zendesk)) == 4 and index.languages() == ["de", "en"]
    de_requests = zendesk.requests_to("GET", "/api/v2/help_center/de/articles.json")
    assert de_requests  # the German articles come from the German listing
    sources = HelpCenterSources(index, ["grounded"], articles_shown=3, prompt_tokens=200)
    german = ticket("Sicherung hängt", "Meine Sicherung bleibt bei 99% stehen, Dateisperre?")
    [(title, url)] = sources.links(german, "de")  # English words (and articles) do not match
    assert title == "Sicherung hängt bei 99%" and url.startswith(zendesk.url + "/hc/de/articles/1-")
    words = lambda text: len(text.split())  # noqa: E731
    [passage] = sources.passages("grounded", german, words, "de")
    assert passage.startswith("Sicherung hängt bei 99%: Eine Sicherung")
    english = ticket("Backup stuck at 99%", "My backup waits for a file lock")
    assert sources.links(english, "en")[0][1].startswith(zendesk.url + "/hc/en-us/")
    # French has no articles: the default locale's (the first listed) answer instead.
    assert sources.links(english, "fr") == sources.links(english, "en")
    assert sources.links(english, None) == sources.links(english, "en")


def test_a_locale_whose_listing_fails_keeps_its_articles(tmp_path, zendesk):
    index = HelpCenterIndex(tmp_path / "hc.json", ["en-us", "de"])
    index.refresh(gateway(zendesk))
    zendesk.fail_next("/api/v2/help_center/de/articles", status=500, times=10)
    zendesk.add_article(3, "Change the schedule", "<p>Settings.</p>", updated_at="2026-02-01T00:00:00Z")
    quick = ZendeskGateway.from_settings(zendesk.url, "agent@example.com", "token", sleep=lambda _: None)
    with pytest.raises(GatewayError):
        index.refresh(quick)
    assert len(index) == 4 and index.search("Restore", 3, "de")  # German kept, English read anew


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)  # keeps whatever a logger lets through
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_indexing_logs_nothing_below_the_level_the_operator_chose(tmp_path, zendesk):
    root, collected = logging.getLogger(), Collected()
    saved_level = root.level
    root.addHandler(collected)
    root.setLevel(logging.INFO)  # `--log-level info`: bm25s's DEBUG lines must not get through
    try:
        index = HelpCenterIndex(tmp_path / "hc.json", ["en-us"])
        index.refresh(gateway(zendesk))
        assert index.search("backup", 1)
    finally:
        root.removeHandler(collected)
        root.setLevel(saved_level)
    assert [r.getMessage() for r in collected.records if r.levelno < logging.INFO] == []


def test_passages_fit_their_budget_and_go_only_to_grounded_models(tmp_path, zendesk):
    index = HelpCenterIndex(tmp_path / "hc.json", ["en-us"])
    index.refresh(gateway(zendesk))
    sources = HelpCenterSources(index, ["grounded"], articles_shown=3, prompt_tokens=20)
    stuck = ticket("Backup stuck at 99%", "My backup waits for a file lock")
    words = lambda text: len(text.split())  # noqa: E731
    [passage] = sources.passages("grounded", stuck, words)  # the second best (9 words) would not fit
    assert passage.startswith("Backup stuck at 99%: A backup that stays at 99%")
    assert sources.passages("plain", stuck, words) == []
    assert HelpCenterSources(index, ["grounded"], 3, prompt_tokens=5).passages("grounded", stuck, words) == []
    assert sources.links(stuck)[0] == (
        "Backup stuck at 99%",
        zendesk.url + "/hc/en-us/articles/1-Backup-stuck-at-99",
    )


class RecordingDrafts:
    def __init__(self):
        self.prompts: dict[str, str] = {}

    def count_tokens(self, model_name, text):
        return len(text.split())

    def context_limit(self, model_name):
        return 2048

    def generate_many(self, batch):
        self.prompts.update(batch[0])
        return [[DraftResult(model, "Close Outlook and retry.") for model in prompts] for prompts in batch]


def test_the_running_bot_links_articles_and_grounds_only_the_chosen_model(tmp_path: Path, zendesk):
    zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
    zendesk.add_ticket(7, "Backup stuck at 99%", 100, comments=[(100, "It waits for a file lock.", True)])
    with FakeSlack() as slack:
        config = tmp_path / "config.toml"
        config.write_text(
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
[[models]]
name = "grounded"
base_model = "stub/a"
grounding = true
[[models]]
name = "plain"
base_model = "stub/b"
"""
        )
        secrets = {
            "SLACK_BOT_TOKEN": "x",
            "SLACK_SIGNING_SECRET": "s",
            "ZENDESK_EMAIL": "a@b.c",
            "ZENDESK_API_TOKEN": "t",
        }
        backend = RecordingDrafts()
        app = build(load_settings(config, env=secrets), backend)
        app.start()
        try:
            waiting.wait_until(
                lambda: app.help_center is not None and len(app.help_center) == 2, 10, "index read"
            )
            app.store.enqueue(7, "test")
            app.worker.wake.set()
            waiting.wait_until(lambda: drafts_posted(app.store, 7, count=2), 30, "drafts posted")
            _, parent_ts = app.store.ticket_thread(7)
            parent = str(slack.find_message("CDRAFTS", parent_ts)["blocks"])
            assert (
                "Help Center" in parent
                and "/hc/en-us/articles/1-Backup-stuck-at-99|Backup stuck at 99%>" in parent
            )
            assert (
                SOURCES_HEADING in backend.prompts["grounded"] and "file lock" in backend.prompts["grounded"]
            )
            assert SOURCES_HEADING not in backend.prompts["plain"]
            assert (tmp_path / ".draftdesk" / "helpcenter.json").is_file()
        finally:
            app.stop()
