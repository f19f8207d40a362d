"""`finetune prepare --grounding`: training prompts with the Help Center passages the bot would put
into a grounded model's prompt, byte for byte; ungrounded datasets exactly as before."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.domain import Comment, Ticket
from core.languages import language_name
from core.prompt import REPLY_LANGUAGE, SOURCES_HEADING, build_prompt
from draftdesk.cli import main
from finetune.config import PrepareConfig
from finetune.fitting import fit_pair
from finetune.pairs import Conversation, Turn, conversation_examples
from finetune.prepare import approximate_tokens, prepare_dataset
from finetune.sample import SAMPLE_PRODUCT, load_sample
from integrations.grounding_config import GroundingSettings
from integrations.help_center_index import Article, ArticleIndex, html_to_text

CONFIG = PrepareConfig(eval_fraction=0.15)
GROUNDING = GroundingSettings(locales=("en-us",), prompt_tokens=300)
# sha256 of the data files `prepare` wrote without grounding (en-us and de, CONFIG): an ungrounded
# dataset must stay byte-identical (`as_before_languages`: less what issue 28 added on purpose).
# The article links hold the loopback Zendesk's port, so its address is hashed as "ZENDESK".
# First, what main wrote at c31e354, before grounding existed, for the sample as it was then: its
# first 44 tickets (ids up to 2044; the tickets added later come after them and leave them
# byte-identical).
FIRST_44_TICKETS_SHA256 = {
    "train.jsonl": "a9bf51e31ac6444b2cc175d6c1b09e9150b2ed9ccfaad43acc1fa81bdb290330",
    "eval.jsonl": "f7c650d52d9aff977e9e1b890f4a5016ebf29c3d7d855c0815ec95a5e3e5588a",
    "articles.jsonl": "5d5e28b8c7011fc3c1747429667c129f9d5a9c1e5cc96fcb0e1f706e3e31ab9f",
}
# Then the whole sample of 100 tickets, taken at a568c8d (where the first 44 still gave the hashes
# above) with `pytest tests/test_finetune_grounded.py -k byte_identical -vv`.
UNGROUNDED_SHA256 = {
    "train.jsonl": "d3a07105cf577d9a10036146a24910f285b41495c383eefb9477a4bc8bf959aa",
    "eval.jsonl": "457ff8faea9525bc2beed9d852ae4b331d5337fe4e634ec3912f7633a9c8cc49",
    "articles.jsonl": "5d5e28b8c7011fc3c1747429667c129f9d5a9c1e5cc96fcb0e1f706e3e31ab9f",
}
LOOPBACK = re.compile(rb"http://127\.0\.0\.1:[0-9]+")


def as_before_languages(path: Path) -> bytes:
    """A data file as prepare wrote it before issue 28: rows without their "language", and prompts
    without the line that asks a non-English ticket's reply in its language (English prompts never
    had one). The rest must be byte for byte what it was."""
    if path.name == "articles.jsonl":
        return path.read_bytes()
    lines = []
    for row in rows(path):
        language = row.pop("language")
        if language != "en":
            line = " " + REPLY_LANGUAGE.format(language=language_name(language))
            assert line in row["prompt"]
            row["prompt"] = row["prompt"].replace(line, "", 1)
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    return "".join(lines).encode("utf-8")


def hashed(folder: Path, names) -> dict[str, str]:
    return {
        name: hashlib.sha256(LOOPBACK.sub(b"ZENDESK", as_before_languages(folder / name))).hexdigest()
        for name in names
    }


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ticket_from(row: dict) -> Ticket:
    """The ticket as the bot would hold it when drafting the row's answer."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    comments = tuple(
        Comment(
            i + 1, 1 if turn["role"] == "customer" else 2, turn["text"], True, t0, turn["role"] == "customer"
        )
        for i, turn in enumerate(row["context"])
    )
    return Ticket(row["ticket_id"], row["subject"], "open", 1, "", t0, "", comments)


def sample_articles(locale: str) -> list[Article]:
    """The sample's published articles of ``locale`` as the bot indexes them from Zendesk."""
    return [
        Article(a["id"], a["locale"], a["title"], a["html_url"], html_to_text(a["body"]), a["updated_at"])
        for a in load_sample().articles
        if a["locale"] == locale and not a["draft"]
    ]


def test_ungrounded_prepare_is_byte_identical_to_before(export_dir: Path, tmp_path: Path) -> None:
    card = prepare_dataset(export_dir, tmp_path, CONFIG, SAMPLE_PRODUCT, progress=False)
    assert hashed(tmp_path, UNGROUNDED_SHA256) == UNGROUNDED_SHA256
    languages = {row["language"] for row in rows(tmp_path / "train.jsonl") + rows(tmp_path / "eval.jsonl")}
    assert languages == {"en", "de"} and card["languages"] == dict(sorted(card["languages"].items()))
    assert "grounding" not in card and "grounded" not in (tmp_path / "card.md").read_text()


def test_ungrounded_prepare_of_the_first_44_tickets_is_what_main_wrote_before_grounding(
    export_dir: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    shutil.copytree(export_dir, export)
    later = [
        f
        for f in export.glob("*/*.json")
        if f.parent.name in ("tickets", "internal_notes") and int(f.stem) > 2044
    ]
    assert len(later) >= 56
    for file in later:
        file.unlink()
    out = tmp_path / "dataset"
    prepare_dataset(export, out, CONFIG, SAMPLE_PRODUCT, progress=False)
    assert hashed(out, FIRST_44_TICKETS_SHA256) == FIRST_44_TICKETS_SHA256


def test_a_grounded_prompt_is_the_prompt_the_bot_would_draft_from(export_dir: Path, tmp_path: Path) -> None:
    card = prepare_dataset(export_dir, tmp_path, CONFIG, SAMPLE_PRODUCT, progress=False, grounding=GROUNDING)
    index = ArticleIndex(sample_articles("en-us"))
    examples = rows(tmp_path / "train.jsonl") + rows(tmp_path / "eval.jsonl")
    for row in examples:
        ticket = ticket_from(row)
        sources = index.prompt_passages(ticket, approximate_tokens, GROUNDING.prompt_tokens)
        assert row["sources"] == sources
        expected = build_prompt(
            ticket, approximate_tokens, CONFIG.max_prompt_tokens, SAMPLE_PRODUCT, sources, row["language"]
        )
        assert row["prompt"] == expected
    grounded = [row for row in examples if row["sources"]]
    assert len(grounded) >= len(examples) * 3 // 4 and all(SOURCES_HEADING in r["prompt"] for r in grounded)
    assert all(sum(approximate_tokens(s) for s in r["sources"]) <= 300 for r in grounded)
    assert card["grounding"] == {
        "locales": ["en-us"],
        "prompt_tokens": 300,
        "articles_indexed": 12,
        "passage_words": 80,
        "examples_with_passages": len(grounded),
        "passages": sum(len(r["sources"]) for r in grounded),
    }
    assert "grounded: yes" in (tmp_path / "card.md").read_text()
    # The same conversations and answers as the ungrounded dataset: only the prompts differ.
    plain = tmp_path / "plain"
    prepare_dataset(export_dir, plain, CONFIG, SAMPLE_PRODUCT, progress=False)
    assert [(r["ticket_id"], r["completion"]) for r in rows(plain / "train.jsonl")] == [
        (r["ticket_id"], r["completion"]) for r in rows(tmp_path / "train.jsonl")
    ]


def test_a_grounded_prompt_cut_for_training_keeps_its_passages(export_dir: Path, tmp_path: Path) -> None:
    prepare_dataset(export_dir, tmp_path, CONFIG, SAMPLE_PRODUCT, progress=False, grounding=GROUNDING)
    row = max((r for r in rows(tmp_path / "train.jsonl") if r["sources"]), key=lambda r: len(r["prompt"]))
    max_length = approximate_tokens(row["prompt"] + row["completion"]) - 5  # a little too long
    fitted = fit_pair(row, approximate_tokens, max_length, SAMPLE_PRODUCT)
    assert fitted is not None and fitted["prompt"] != row["prompt"]
    assert all(f"- {source}" in fitted["prompt"] for source in row["sources"])
    assert approximate_tokens(fitted["prompt"] + fitted["completion"]) + 1 <= max_length


def test_passages_are_found_with_the_question_never_with_the_answer() -> None:
    asked: list[Ticket] = []

    def find_sources(ticket: Ticket, count, language) -> list[str]:
        asked.append(ticket)
        return ["Restore: open Restore and pick a date."]

    conversation = Conversation(
        1,
        "Restore",
        (
            Turn("customer", "How do I get a file back?"),
            Turn("agent", "Open Restore and pick a date."),
            Turn("customer", "And a whole folder?"),
            Turn("agent", "Pick the folder instead of a file."),
        ),
    )
    examples = conversation_examples(
        conversation, "multi_turn", approximate_tokens, 512, "Parcelo", find_sources
    )
    assert [len(t.comments) for t in asked] == [1, 3]  # each answer's own context, nothing after it
    assert all(t.comments[-1].author_is_requester for t in asked)
    assert all(e.sources == ("Restore: open Restore and pick a date.",) for e in examples)
    assert all("- Restore: open Restore and pick a date." in e.prompt for e in examples)


def test_grounding_without_articles_in_the_locales_says_what_to_do(export_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no Help Center articles in fr.*\[grounding\] locales"):
        prepare_dataset(
            export_dir,
            tmp_path,
            CONFIG,
            SAMPLE_PRODUCT,
            progress=False,
            grounding=GroundingSettings(locales=("fr",)),
        )


def test_cli_prepares_a_grounded_dataset_and_train_refuses_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[worker]
product_name = "{SAMPLE_PRODUCT}"
[grounding]
enabled = true
locales = ["en-us"]
prompt_tokens = 300
[finetune]
workdir = "{tmp_path / "work"}"
[finetune.export]
locales = ["en-us"]
[finetune.prepare]
eval_fraction = 0.15
[[models]]
name = "grounded"
base_model = "{tmp_path / "no-model"}"
grounding = true
[[models]]
name = "plain"
base_model = "{tmp_path / "no-model"}"
"""
    )
    args = ["--config", str(config)]
    assert main(["finetune", "export", "--sample", *args]) == 0
    assert main(["finetune", "prepare", "--grounding", *args]) == 0
    out = capsys.readouterr().out
    grounded_dir = tmp_path / "work" / "dataset-grounded"
    assert f"dataset in {grounded_dir}" in out and "grounded:" in out
    card = json.loads((grounded_dir / "card.json").read_text())
    assert card["grounding"]["locales"] == ["en-us"] and card["grounding"]["prompt_tokens"] == 300
    assert all(SOURCES_HEADING in r["prompt"] for r in rows(grounded_dir / "train.jsonl") if r["sources"])
    assert not (tmp_path / "work" / "dataset").exists()  # the study's dataset is left alone

    assert main(["finetune", "train", "--model", "plain", "--dataset", str(grounded_dir), *args]) == 2
    err = capsys.readouterr().err
    assert "with Help Center passages" in err and "grounding = false" in err and "Traceback" not in err
    assert main(["finetune", "prepare", *args]) == 0
    capsys.readouterr()
    plain_dir = str(tmp_path / "work" / "dataset")
    assert main(["finetune", "train", "--model", "grounded", "--dataset", plain_dir, *args]) == 2
    err = capsys.readouterr().err
    assert "prepare --grounding" in err and len(err.strip().splitlines()) == 1
    # A feedback set's sft/ is never grounded: point at its dpo/ and kto/, never at overwriting it.
    feedback = tmp_path / "feedback"
    shutil.copytree(plain_dir, feedback / "sft")
    (feedback / "dpo").mkdir()
    assert main(["finetune", "train", "--model", "grounded", "--dataset", str(feedback / "sft"), *args]) == 2
    err = capsys.readouterr().err
    assert "feedback set's sft/" in err and "--method dpo|kto" in err and "--out" not in err
