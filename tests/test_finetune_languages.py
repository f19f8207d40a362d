"""Training per language (issue 28 item 4): the export records each ticket's language, prepare keeps
it on every example, `prepare --language de` writes that language's dataset split by whole tickets,
and an export made before languages were is read the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from finetune.config import PrepareConfig
from finetune.prepare import prepare_dataset
from finetune.sample import SAMPLE_PRODUCT
from tests.test_cli import draftdesk

CONFIG = PrepareConfig(eval_fraction=0.15)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def exported(export_dir: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in (export_dir / "tickets").glob("*.json")}


def test_the_export_records_each_tickets_language(export_dir: Path):
    tickets = exported(export_dir)
    languages = {data["language"] for data in tickets.values()}
    assert languages == {"en", "de"}
    german = [t for t in tickets.values() if t["language"] == "de"]
    assert german and all(any(c["role"] == "requester" for c in t["comments"]) for t in german)
    assert any("ich" in c["body"].lower().split() for t in german for c in t["comments"])


def test_prepare_language_writes_that_languages_dataset_split_by_ticket(export_dir: Path, tmp_path: Path):
    everything = prepare_dataset(export_dir, tmp_path / "all", CONFIG, SAMPLE_PRODUCT, progress=False)
    card = prepare_dataset(export_dir, tmp_path / "de", CONFIG, SAMPLE_PRODUCT, progress=False, language="de")
    train, held_out = rows(tmp_path / "de" / "train.jsonl"), rows(tmp_path / "de" / "eval.jsonl")
    assert train and held_out
    assert {r["language"] for r in train + held_out} == {"de"}
    assert all("Write the reply in German, the customer's language." in r["prompt"] for r in train + held_out)
    assert not {r["ticket_id"] for r in train} & {r["ticket_id"] for r in held_out}  # tickets kept whole
    assert card["settings"]["language"] == "de" and list(card["languages"]) == ["de"]
    assert card["filters"]["tickets_in_language"] < card["filters"]["tickets_exported"]
    assert card["languages"]["de"] == everything["languages"]["de"] == len(train) + len(held_out)
    assert set(everything["languages"]) == {"de", "en"}


def test_an_export_without_languages_is_decided_at_prepare(export_dir: Path, tmp_path: Path):
    old = tmp_path / "old-export"
    shutil.copytree(export_dir, old)
    for path in (old / "tickets").glob("*.json"):
        data = json.loads(path.read_text())
        del data["language"]
        path.write_text(json.dumps(data))
    prepare_dataset(old, tmp_path / "old", CONFIG, SAMPLE_PRODUCT, progress=False)
    prepare_dataset(export_dir, tmp_path / "new", CONFIG, SAMPLE_PRODUCT, progress=False)
    assert (tmp_path / "old" / "train.jsonl").read_bytes() == (tmp_path / "new" / "train.jsonl").read_bytes()


def test_prepare_language_from_the_command_line(export_dir: Path, tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text("[finetune]\nworkdir = 'work'\n[[models]]\nname = 'm'\nbase_model = 'x'\n")
    result = draftdesk(
        "finetune", "prepare", "--config", str(config), "--in", str(export_dir), "--language", "de"
    )
    assert result.returncode == 0, result.stderr
    assert {r["language"] for r in rows(tmp_path / "work" / "dataset-de" / "train.jsonl")} == {"de"}
    wrong = draftdesk(
        "finetune", "prepare", "--config", str(config), "--in", str(export_dir), "--language", "German"
    )
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip() == (
        "draftdesk finetune prepare: --language: expected an ISO 639-1 code like \"de\", got 'German'"
    )


def test_feedback_collects_the_drafts_of_one_language():
    from bot.store.memory import MemoryStore
    from core.domain import Vote
    from draftdesk.commands.feedback import collect
    from tests.test_promotion import NOW

    store = MemoryStore()
    for ticket, language in ((1, "de"), (2, "en"), (3, None)):  # 3: recorded before languages were
        store.enqueue(ticket, "webhook")
        store.create_round(ticket, ticket * 10, [("A", "m")], language)
        store.save_generated(f"t{ticket}r1A", "text", None, prompt="prompt")
        store.record_vote(Vote(ticket, f"t{ticket}r1A", "m", "U1", 4, "button", NOW))
    assert [(d.ticket_id, d.language) for d in collect(store)] == [(1, "de"), (2, "en"), (3, "en")]
    assert [d.ticket_id for d in collect(store, language="de")] == [1]
    assert [d.ticket_id for d in collect(store, language="en")] == [2, 3]
    assert [d.ticket_id for d in collect(store, language="de", default_language="de")] == [1, 3]
