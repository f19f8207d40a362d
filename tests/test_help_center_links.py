"""The Help Center links under each ticket: on by default when the Zendesk account's Help Center has
articles (one read at start), off on a 404 or an empty Help Center (one log line), `[grounding]
enabled` deciding when it is set, and `draftdesk doctor` saying which and why. Zendesk is the
stand-in over HTTP; the running bot posts to the Slack stand-in."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import load_settings
from core.prompt import SOURCES_HEADING
from draftdesk.app import build
from draftdesk.commands.doctor import OK, WARN, run_checks
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from tests import waiting
from tests.test_grounding import STUCK, RecordingDrafts
from tests.waiting import drafts_posted

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-links",
    "SLACK_SIGNING_SECRET": "s",
    "ZENDESK_EMAIL": "a@b.c",
    "ZENDESK_API_TOKEN": "t",
}
ARTICLES = "/api/v2/help_center/"
NO_HELP_CENTER = 1000  # requests answered 404, as by an account without a Help Center
LINK = "/hc/en-us/articles/1-Backup-stuck-at-99|Backup stuck at 99%>"
PLAIN = '[[models]]\nname = "plain"\nbase_model = "stub/b"\n'


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.channels["CDRAFTS"] = True
        yield fake


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    with FakeZendesk() as fake:
        fake.add_user(100, "Maria Schmidt", "maria@example.com")
        fake.add_ticket(7, "Backup stuck at 99%", 100, comments=[(100, "It waits for a file lock.", True)])
        yield fake


def with_articles(zendesk: FakeZendesk) -> FakeZendesk:
    zendesk.add_article(1, "Backup stuck at 99%", STUCK, updated_at="2026-01-01T00:00:00Z")
    zendesk.add_article(2, "Restore a file", "<p>Open Restore.</p>", updated_at="2026-01-02T00:00:00Z")
    return zendesk


def write_config(
    tmp_path: Path, slack: FakeSlack, zendesk: FakeZendesk, grounding: str = "", models: str = PLAIN
) -> Path:
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
{grounding}
{models}
"""
    )
    return path


def parent_of_ticket_7(tmp_path: Path, slack: FakeSlack, config: Path, backend: RecordingDrafts) -> str:
    """Starts the bot, drafts ticket 7 and returns its parent message's blocks, as text."""
    app = build(load_settings(config, env=SECRETS), backend)
    app.start()
    try:
        if app.help_center is not None:
            waiting.wait_until(lambda: len(app.help_center) == 2, 10, "index read")
        app.store.enqueue(7, "test")
        app.worker.wake.set()
        waiting.wait_until(
            lambda: drafts_posted(app.store, 7, count=len(backend.models)), 30, "drafts posted"
        )
        _, parent_ts = app.store.ticket_thread(7)
        return str(slack.find_message("CDRAFTS", parent_ts)["blocks"])
    finally:
        app.stop()


class Drafts(RecordingDrafts):
    def __init__(self, *models: str) -> None:
        super().__init__()
        self.models = models


def links_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Help Center links")]


def test_links_are_on_by_default_when_the_help_center_has_articles(
    tmp_path: Path, slack: FakeSlack, zendesk: FakeZendesk, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        parent = parent_of_ticket_7(
            tmp_path, slack, write_config(tmp_path, slack, with_articles(zendesk)), Drafts("plain")
        )
    assert "Help Center" in parent and LINK in parent
    assert links_lines(caplog) == [
        "Help Center links on: the Help Center has 2 article(s) in en-us ([grounding] enabled unset)"
    ]


@pytest.mark.parametrize(
    ("help_center", "why"),
    [
        ("none", "Zendesk has no Help Center (404 for its en-us articles)"),
        ("empty", "the Help Center has no articles in en-us"),
    ],
)
def test_without_a_help_center_or_articles_the_links_are_off_with_one_log_line(
    tmp_path: Path,
    slack: FakeSlack,
    zendesk: FakeZendesk,
    caplog: pytest.LogCaptureFixture,
    help_center: str,
    why: str,
) -> None:
    if help_center == "none":
        zendesk.fail_next(ARTICLES, 404, times=NO_HELP_CENTER)
    with caplog.at_level(logging.INFO):
        parent = parent_of_ticket_7(tmp_path, slack, write_config(tmp_path, slack, zendesk), Drafts("plain"))
    assert "Help Center" not in parent
    assert links_lines(caplog) == [
        f"Help Center links off: {why} ([grounding] enabled unset: restart once it has articles, "
        "or set enabled = true)"
    ]
    # One read at start, nothing after: no index is kept or refreshed.
    assert len([r for r in zendesk.requests if r.path.startswith(ARTICLES)]) == 1


def test_enabled_false_turns_the_links_off_and_a_grounded_model_still_reads_the_articles(
    tmp_path: Path, slack: FakeSlack, zendesk: FakeZendesk, caplog: pytest.LogCaptureFixture
) -> None:
    models = '[[models]]\nname = "grounded"\nbase_model = "stub/a"\ngrounding = true\n'
    models += '[[models]]\nname = "plain"\nbase_model = "stub/b"\n'
    config = write_config(tmp_path, slack, with_articles(zendesk), "[grounding]\nenabled = false", models)
    backend = Drafts("grounded", "plain")
    with caplog.at_level(logging.INFO):
        parent = parent_of_ticket_7(tmp_path, slack, config, backend)
    assert "Help Center" not in parent
    assert SOURCES_HEADING in backend.prompts["grounded"] and "file lock" in backend.prompts["grounded"]
    assert SOURCES_HEADING not in backend.prompts["plain"]
    assert links_lines(caplog) == ["Help Center links off: [grounding] enabled = false"]
    listings = zendesk.requests_to("GET", "/api/v2/help_center/en-us/articles.json")
    assert listings and not [r for r in listings if r.query.get("per_page") == "1"]  # no count: it is set


@pytest.mark.parametrize(
    ("articles", "grounding", "status", "detail"),
    [
        (True, "", OK, "on: the Help Center has 2 article(s) in en-us ([grounding] enabled unset)"),
        (False, "", OK, "off: the Help Center has no articles in en-us ([grounding] enabled unset"),
        (None, "", OK, "off: Zendesk has no Help Center (404 for its en-us articles)"),
        (True, "[grounding]\nenabled = false", OK, "off: [grounding] enabled = false"),
        (False, "[grounding]\nenabled = true", OK, "on: [grounding] enabled = true"),
        ("denied", "", WARN, "off: could not read the Help Center"),
    ],
)
def test_doctor_says_whether_the_links_are_on_and_why(
    tmp_path: Path,
    slack: FakeSlack,
    zendesk: FakeZendesk,
    articles: bool | str | None,
    grounding: str,
    status: str,
    detail: str,
) -> None:
    if articles is True:
        with_articles(zendesk)
    elif articles is None:
        zendesk.fail_next(ARTICLES, 404, times=NO_HELP_CENTER)
    elif articles == "denied":
        zendesk.fail_next(ARTICLES, 403, times=NO_HELP_CENTER)
    checks = {c.name: c for c in run_checks(write_config(tmp_path, slack, zendesk, grounding), SECRETS)}
    links = checks["Help Center links"]
    assert links.status == status and links.detail.startswith(detail), links.detail


def test_the_docs_say_what_unset_true_and_false_mean() -> None:
    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in readme.splitlines() if line.startswith("| `enabled` | unset")]
    config = (repo / "config.toml").read_text(encoding="utf-8").splitlines()
    [at] = [i for i, line in enumerate(config) if line.startswith("# enabled =")]
    following = itertools.takewhile(lambda line: line.startswith("#    "), config[at + 1 :])
    comment = " ".join([config[at], *following])  # the comment and its continued lines
    for text in (row, comment):
        assert "unset" in text and "true" in text and "false" in text, text
