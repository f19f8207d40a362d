"""`finetune prepare` on the bundled sample exported through the loopback Zendesk: counts, privacy, format."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.domain import Comment, Ticket
from core.prompt import build_prompt
from finetune.config import PrepareConfig
from finetune.prepare import approximate_tokens, prepare_dataset
from finetune.sample import SAMPLE_PRODUCT, load_sample

CONFIG = PrepareConfig(eval_fraction=0.15)


@pytest.fixture(scope="module")
def dataset(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dataset")
    return out, prepare_dataset(export_dir, out, CONFIG, SAMPLE_PRODUCT, progress=False)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_card_counts_every_filter_on_the_sample(dataset: tuple[Path, dict]) -> None:
    out, card = dataset
    assert card["filters"] == {
        "internal_notes": 5,
        "tickets_exported": 96,
        "tickets_with_question": 96,
        "tickets_answered": 93,  # 3 unanswered dropped
        "examples": 93,
        "examples_after_short_answers": 93,
        "examples_after_exact_dedup": 92,  # the same question sent twice
        "examples_after_near_dedup": 88,  # four re-asked with a word changed
        "articles_exported": 16,
        "articles_non_empty": 16,
        "articles_after_dedup": 16,
    }
    assert card["splits"]["train"]["examples"] + card["splits"]["eval"]["examples"] == 88
    assert card["splits"]["eval"]["tickets"] == 14
    for part in ("train", "eval", "articles"):
        assert card["splits"][part]["characters"] > 0 and card["splits"][part]["tokens"] > 0
    assert set(card["placeholders"]) >= {"NAME", "EMAIL", "PHONE", "ADDRESS", "IP", "URL_WITH_TOKEN"}
    markdown = (out / "card.md").read_text()
    assert "| after near duplicates removed | 88 |" in markdown and "`<NAME>`" in markdown


def test_no_personal_data_or_internal_note_reaches_the_dataset(
    export_dir: Path, dataset: tuple[Path, dict]
) -> None:
    out, _ = dataset
    text = "".join(
        (out / name).read_text(encoding="utf-8") for name in ("train.jsonl", "eval.jsonl", "articles.jsonl")
    )
    sample = load_sample()
    for user in sample.users:
        for part in [user["name"], *user["name"].split(), user["email"]]:
            assert not re.search(rf"(?<!\w){re.escape(part)}(?!\w)", text), part
    for planted in (
        "4111 1111 1111 1111",
        "221B Baker Street",
        "Hauptstraße",
        "token=Qx",
        "203.0.113.",
        "7946",
    ):
        assert planted not in text
    notes = [
        n["body"]
        for f in (export_dir / "internal_notes").glob("*.json")
        for n in json.loads(f.read_text())["notes"]
    ]
    assert notes and not any(note in text for note in notes)
    assert "Sent from my iPhone" not in text and "wrote:" not in text and "\n>" not in text


def test_examples_are_in_the_bots_prompt_format(dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    for row in rows(out / "train.jsonl") + rows(out / "eval.jsonl"):
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        comments = tuple(
            Comment(
                i + 1, 1 if t["role"] == "customer" else 2, t["text"], True, epoch, t["role"] == "customer"
            )
            for i, t in enumerate(row["context"])
        )
        ticket = Ticket(row["ticket_id"], row["subject"], "solved", 1, "", epoch, "", comments)
        assert row["prompt"] == build_prompt(
            ticket, approximate_tokens, CONFIG.max_prompt_tokens, SAMPLE_PRODUCT, language=row["language"]
        )
        if row["language"] == "en":  # English prompts are as they always were
            assert row["prompt"] == build_prompt(
                ticket, approximate_tokens, CONFIG.max_prompt_tokens, SAMPLE_PRODUCT
            )
        assert row["prompt"].endswith("\n\nAgent:") and row["completion"].startswith(" ")
        assert "Best regards" not in row["completion"]  # the signature was cut


def test_split_is_by_ticket_and_prepare_is_deterministic(
    export_dir: Path, dataset: tuple[Path, dict], tmp_path: Path
) -> None:
    out, card = dataset
    train = {r["ticket_id"] for r in rows(out / "train.jsonl")}
    held_out = {r["ticket_id"] for r in rows(out / "eval.jsonl")}
    assert train and held_out and not train & held_out
    again = prepare_dataset(export_dir, tmp_path, CONFIG, SAMPLE_PRODUCT, progress=False)
    assert again["dataset_hash"] == card["dataset_hash"]
    for name in ("train.jsonl", "eval.jsonl", "articles.jsonl", "card.md"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def test_multi_turn_mode_adds_the_follow_up_answers(export_dir: Path, tmp_path: Path) -> None:
    card = prepare_dataset(
        export_dir, tmp_path, replace(CONFIG, pairs="multi_turn"), SAMPLE_PRODUCT, progress=False
    )
    assert card["filters"]["examples"] == 95  # 93 first answers + 2 follow-up exchanges
    follow_ups = [
        r for r in rows(tmp_path / "train.jsonl") + rows(tmp_path / "eval.jsonl") if len(r["context"]) > 2
    ]
    assert follow_ups and all("\n\nAgent: " in r["prompt"] for r in follow_ups)


def test_articles_are_plain_text_with_titles(dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    articles = {(a["locale"], a["id"]): a for a in rows(out / "articles.jsonl")}
    install = articles[("en-us", 360001)]
    assert install["title"] == "Install the desktop app"
    assert "1. Sign in at app.acme-backup.example (https://app.acme-backup.example)." in install["text"]
    assert "curl -fsSL https://get.acme-backup.example/install.sh | sudo bash" in install["text"]
    assert "<" not in install["text"].replace("<NAME>", "")
    assert articles[("de", 360002)]["title"] == "Sicherung hängt bei 99 %"
