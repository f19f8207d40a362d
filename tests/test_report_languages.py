"""Reports per language (issue 28 item 5): each model's ratings within each customer language and the
paired comparison with the baseline within each language that has enough tickets, in `report` (text,
Markdown, JSON, CSV) and the weekly digest; rounds recorded before languages read as the default."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import DigestSettings
from bot.reporting.languages import language_sections, vote_languages
from bot.reporting.period_report import period_report
from bot.reporting.report import render
from bot.slack.digest import DigestService, store_round_language
from bot.store.memory import MemoryStore
from bot.store.partitioned import PartitionedStore
from core.domain import Vote
from tests.recording_poster import RecordingPoster
from tests.test_cli import draftdesk

NOW = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
MODELS = ["llama2-7b-ft", "llama2-7b-ft-de", "llama2-7b"]
UNTUNED = ["llama2-7b"]


def seed(store, german_tickets: int = 12, english_tickets: int = 3, old_tickets: int = 2) -> list[Vote]:
    """German tickets: the German model (B) beats the baseline (C); English ones: the English model
    (A) and the baseline; old rounds (no language recorded): A and C."""
    votes = []
    at = NOW - timedelta(days=2)

    def rate(ticket: int, language: str | None, drafts: list[tuple[str, int]]) -> None:
        labels = "ABC"[: len(drafts)]
        store.create_round(
            ticket, ticket * 10, list(zip(labels, [m for m, _ in drafts], strict=True)), language
        )
        for label, (model, score) in zip(labels, drafts, strict=True):
            vote = Vote(ticket, f"t{ticket}r1{label}", model, "U1", score, "button", at)
            store.record_vote(vote)
            votes.append(vote)

    for t in range(1, german_tickets + 1):
        rate(t, "de", [("llama2-7b-ft-de", 5), ("llama2-7b", 2)])
    for t in range(100, 100 + english_tickets):
        rate(t, "en", [("llama2-7b-ft", 4), ("llama2-7b", 4)])
    for t in range(200, 200 + old_tickets):
        rate(t, None, [("llama2-7b-ft", 3), ("llama2-7b", 1)])
    return votes


def test_old_rounds_count_as_the_default_language():
    store = MemoryStore()
    votes = seed(store)
    languages = vote_languages(votes, store_round_language(store), "en")
    assert languages["t1r1A"] == "de" and languages["t100r1A"] == "en" and languages["t200r1B"] == "en"
    assert vote_languages(votes, store_round_language(store), "de")["t200r1B"] == "de"


def test_each_language_has_its_own_rows_and_a_comparison_once_it_has_enough_tickets():
    store = MemoryStore()
    votes = seed(store)
    languages = vote_languages(votes, store_round_language(store), "en")
    german, english = language_sections(votes, languages, MODELS, UNTUNED, "llama2-7b", min_tickets=10)
    assert german.language == "de" and german.tickets == 12 and german.compared
    assert [(r.model, r.n, r.positive_pct) for r in german.rows] == [
        ("llama2-7b-ft-de", 12, 100.0),
        ("llama2-7b", 12, 0.0),
    ]
    [comparison] = german.comparisons
    assert (comparison.model, comparison.baseline, comparison.n_pairs) == ("llama2-7b-ft-de", "llama2-7b", 12)
    assert comparison.verdict == "better"
    assert english.language == "en" and english.tickets == 5 and not english.compared
    assert english.comparisons == [] and [r.model for r in english.rows] == ["llama2-7b-ft", "llama2-7b"]


def test_a_language_the_baseline_never_drafted_is_compared_with_its_own_untuned_model():
    store = MemoryStore()
    votes = seed(store)
    languages = vote_languages(votes, store_round_language(store), "en")
    sections = language_sections(votes, languages, MODELS, UNTUNED, "llama2-7b-ft", min_tickets=10)
    assert sections[0].baseline == "llama2-7b"  # the English model wrote no German draft


def report(store, votes, **kwargs):
    languages = vote_languages(votes, store_round_language(store), "en")
    return period_report(votes, MODELS, UNTUNED, NOW, languages=languages, min_language_tickets=10, **kwargs)


def test_the_report_shows_the_languages_in_every_format():
    store = MemoryStore()
    result = report(store, seed(store))
    data = json.loads(render(result, "json"))
    assert sorted(data["languages"]) == ["de", "en"]
    german = data["languages"]["de"]
    assert german["name"] == "German" and german["tickets"] == 12 and german["baseline"] == "llama2-7b"
    assert [m["model"] for m in german["models"]] == ["llama2-7b-ft-de", "llama2-7b"]
    assert german["comparisons"][0]["verdict"] == "better"
    assert data["languages"]["en"]["comparisons"] is None  # 5 tickets: too few to compare
    text = render(result, "text")
    assert "German (de): 12 rated ticket(s)" in text
    assert "English (en): 5 rated ticket(s); compared with the baseline from 10 on" in text
    markdown = render(result, "markdown")
    assert "#### German (de): 12 rated ticket(s)" in markdown
    csv = render(result, "csv")
    assert "Language,Model,n,Mean,Positive %,Positive 95% CI" in csv
    assert "\nde,llama2-7b-ft-de,12,5.00,100.0," in csv
    assert "\nde,llama2-7b-ft-de,llama2-7b,12," in csv  # the comparison within German


def test_a_report_in_one_language_keeps_its_tables_and_lists_the_language_in_json():
    store = MemoryStore()
    votes = seed(store, german_tickets=0)
    result = report(store, votes)
    assert "rated ticket(s)" not in render(result, "text")
    assert list(json.loads(render(result, "json"))["languages"]) == ["en"]


def test_the_weekly_digest_shows_each_language():
    store, slack = MemoryStore(), RecordingPoster()
    seed(store)
    digest = DigestService(
        store,
        slack,
        DigestSettings(channel="C1"),
        MODELS,
        clock=lambda: NOW,
        untuned=UNTUNED,
        min_language_tickets=10,
    )
    content = digest.compose(NOW)
    text = "\n".join(b["text"]["text"] for b in content.blocks if b.get("type") == "section")
    assert "*Per language* (the customer's):" in text
    assert (
        "• *German (de)*, 12 ticket(s) this week: llama2-7b-ft-de 100% positive (n=12), llama2-7b 0% positive"
        in text
    )
    assert "llama2-7b-ft-de vs llama2-7b: +100.0 points" in text
    assert "• *English (en)*, 5 ticket(s) this week" in text
    assert "against its baseline from 10 rated tickets on (8 weeks: 5)" in text


def test_the_report_command_reads_the_languages_from_the_store(tmp_path: Path):
    store = PartitionedStore(tmp_path / "store.json")
    seed(store)
    store.close()
    config = tmp_path / "config.toml"
    adapters = {m: f'adapter = "adapters/{m}"\n' for m in MODELS if m not in UNTUNED}
    models = "".join(f'[[models]]\nname = "{m}"\nbase_model = "x"\n{adapters.get(m, "")}' for m in MODELS)
    config.write_text(f'[storage]\npath = "store.json"\n[languages]\ncompare_min_tickets = 10\n{models}')
    result = draftdesk("report", "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    languages = json.loads(result.stdout)["languages"]
    assert languages["de"]["tickets"] == 12 and languages["en"]["tickets"] == 5
    assert languages["de"]["comparisons"][0]["model"] == "llama2-7b-ft-de"
