"""`draftdesk finetune feedback`: a real store of rated drafts and the bundled sample in the loopback
Zendesk (zenpy over HTTP) become SFT, KTO and DPO datasets with a card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.store.partitioned import PartitionedStore
from core.domain import Vote
from core.prompt import build_prompt
from draftdesk.cli import main
from finetune.preference import read_rows
from finetune.prepare import approximate_tokens, load_dataset_dir
from finetune.sample import SAMPLE_EMAIL, SAMPLE_PRODUCT, SAMPLE_TOKEN, sample_zendesk
from integrations.zendesk import ZendeskGateway
from tests.test_promotion import NOW

GOOD = "Hi Tom, close Outlook and start the backup again; write to tom.baker@example.com if it stays."
BAD = "Not our problem. Read the manual."
DELETED = 999_999  # drafted, then deleted in Zendesk


def seed_store(path: Path, gateway: ZendeskGateway) -> None:
    """Tickets 2001-2006 drafted by three models; 2001-2003 with a good and a bad draft, 2004-2005
    with a bad draft only (the agent's sent reply is what to prefer), 2006 rated and then un-rated."""
    store = PartitionedStore(path)

    def draft(
        ticket_id: int, label: str, model: str, version: str | None, text: str, scores: list[int]
    ) -> None:
        store.save_generated(
            f"t{ticket_id}r1{label}", text, None, model_version=version, prompt=prompts[ticket_id]
        )
        for rater, score in enumerate(scores):
            vote = Vote(
                ticket_id,
                f"t{ticket_id}r1{label}",
                model,
                f"U{rater}",
                score,
                "reaction",
                NOW,
                model_version=version,
            )
            store.record_vote(vote)

    prompts = {}
    for ticket_id in (2001, 2002, 2003, 2004, 2005, 2006, DELETED):
        question = 1 if ticket_id == DELETED else gateway.fetch_ticket(ticket_id).comments[0]
        comment_id = question if isinstance(question, int) else question.id
        store.enqueue(ticket_id, "webhook")
        store.create_round(ticket_id, comment_id, [("A", "ft"), ("B", "ft"), ("C", "base")])
        real = gateway.fetch_ticket(2001 if ticket_id == DELETED else ticket_id)
        prompts[ticket_id] = build_prompt(real, approximate_tokens, 2000, SAMPLE_PRODUCT)
        if ticket_id in (2001, 2002, 2003, DELETED):
            draft(ticket_id, "A", "ft", "v2", GOOD, [5, 4])
        if ticket_id != 2006:
            draft(ticket_id, "B", "ft", "v1", BAD, [1, 2])
            draft(ticket_id, "C", "base", None, f"Thanks, we look into ticket {ticket_id}.", [3])
    store.save_generated("t2006r1B", "An unrated draft.", None, model_version="v1", prompt=prompts[2006])
    store.record_vote(Vote(2006, "t2006r1B", "ft", "U1", 1, "reaction", NOW, model_version="v1"))
    assert store.remove_reaction_vote("t2006r1B", "U1", 1)  # the vote was taken back
    store.close()


@pytest.fixture
def feedback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    with sample_zendesk() as zd:
        seed_store(tmp_path / "store.json", ZendeskGateway.from_settings(zd.url, SAMPLE_EMAIL, SAMPLE_TOKEN))
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[storage]
path = "./store.json"

[zendesk]
url = "{zd.url}"

[worker]
product_name = "{SAMPLE_PRODUCT}"

[finetune.prepare]
eval_fraction = 0.3

[[models]]
name = "ft"
base_model = "base"
"""
        )
        monkeypatch.setenv("ZENDESK_EMAIL", SAMPLE_EMAIL)
        monkeypatch.setenv("ZENDESK_API_TOKEN", SAMPLE_TOKEN)

        def run(out: Path, *extra: str) -> tuple[int, str, str]:
            code = main(["finetune", "feedback", "--config", str(config), "--out", str(out), *extra])
            printed = capsys.readouterr()
            return code, printed.out, printed.err

        yield run


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for name in ("train.jsonl", "eval.jsonl") for line in (folder / name).open()]


def test_feedback_builds_kto_dpo_and_sft_sets_from_ratings_and_sent_replies(feedback, tmp_path: Path) -> None:
    code, out, err = feedback(tmp_path / "data")
    assert code == 0, err
    data = tmp_path / "data"
    assert "kto" in out and str(data / "card.md") in out

    kto = rows(data / "kto")
    # 2001-2003: good (true), bad (false), base rated 3 (true); 2004-2005: bad, base; 2006: unrated.
    assert sorted((r["ticket_id"], r["model_version"] or "", r["label"]) for r in kto) == sorted(
        [(t, "v2", True) for t in (2001, 2002, 2003)]
        + [(t, "v1", False) for t in (2001, 2002, 2003, 2004, 2005)]
        + [(t, "", True) for t in (2001, 2002, 2003, 2004, 2005)]
    )
    assert all(r["prompt"].endswith("Agent:") and r["completion"].startswith(" ") for r in kto)
    texts = json.dumps(kto + rows(data / "dpo") + rows(data / "sft"))
    assert "tom.baker@example.com" not in texts and "Tom Baker" not in texts and "<EMAIL>" in texts

    dpo = {r["ticket_id"]: r for r in rows(data / "dpo")}
    assert sorted(dpo) == [2001, 2002, 2003, 2004, 2005]
    assert {dpo[t]["chosen_from"] for t in (2001, 2002, 2003)} == {"draft"}
    assert dpo[2001]["rejected"] == " " + BAD and "<EMAIL>" in dpo[2001]["chosen"]
    assert dpo[2004]["chosen_from"] == "sent_reply" and "James" not in dpo[2004]["chosen"]
    assert "you can get it" in dpo[2004]["chosen"]  # the agent's public reply, cleaned and redacted

    sft = rows(data / "sft")
    assert {r["ticket_id"] for r in sft} <= {2001, 2002, 2003, 2004, 2005, 2006} and len(sft) >= 6
    assert all(r["prompt"].endswith("Agent:") for r in sft)
    load_dataset_dir(data / "sft")  # what `finetune train --method sft --dataset DATA/sft` reads
    assert read_rows(data / "dpo" / "train.jsonl", "dpo") or read_rows(data / "dpo" / "eval.jsonl", "dpo")

    card = json.loads((data / "card.json").read_text())
    filters = card["filters"]
    assert filters["drafts_ticket_deleted"] == 3 and filters["drafts_unrated"] == 1  # the vote taken back
    assert filters["drafts_failed"] == 4  # never generated: 2004A, 2005A, 2006A, 2006C
    assert filters["kto_rows_after_exact_dedup"] == len(kto) and filters["dpo_pairs_after_exact_dedup"] == 5
    assert card["per_model_version"]["ft @ v2"]["desirable"] == 3
    assert card["per_model_version"]["ft @ v1"]["dpo_rejected"] == 5
    assert card["per_score"] == {"1": 5, "2": 5, "3": 5, "4": 3, "5": 3}
    train, held_out = set(card["train_tickets"]), set(card["eval_tickets"])
    assert held_out and not train & held_out
    for name in ("sft", "kto", "dpo"):
        held = [json.loads(line) for line in (data / name / "eval.jsonl").open()]
        assert {r["ticket_id"] for r in held} <= held_out  # one split by ticket for all three sets
    assert "| left out: ticket deleted in Zendesk | 3 |" in (data / "card.md").read_text()

    code, _, _ = feedback(tmp_path / "again")
    for name in ("kto/train.jsonl", "dpo/eval.jsonl", "sft/train.jsonl", "card.json"):
        assert (data / name).read_bytes() == (tmp_path / "again" / name).read_bytes()  # reproducible


def test_feedback_without_a_store_or_credentials_says_what_to_do(feedback, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ZENDESK_API_TOKEN")
    code, _, err = feedback(tmp_path / "x")
    assert code == 2 and "ZENDESK_API_TOKEN" in err and "Traceback" not in err


def test_a_period_with_no_rated_drafts_says_so_and_writes_nothing(feedback, tmp_path: Path) -> None:
    code, out, err = feedback(tmp_path / "none", "--since", "2099-01-01")
    assert code == 1 and out == "" and not (tmp_path / "none").exists()
    assert "no rated drafts since 2099-01-01" in err and "earlier --since" in err and "Traceback" not in err


def test_feedback_for_a_language_without_drafts_says_so(feedback, tmp_path: Path):
    code, _, err = feedback(tmp_path / "de", "--language", "de")  # the store's rounds predate languages
    assert code == 1 and "no rated drafts in de" in err and "Traceback" not in err
    code, _, err = feedback(tmp_path / "en", "--language", "en")
    assert code == 0, err
    kto = [json.loads(line) for line in (tmp_path / "en" / "kto" / "train.jsonl").open()]
    assert kto and {row["language"] for row in kto} == {"en"}
    code, _, err = feedback(tmp_path / "x", "--language", "deu")
    assert code == 2 and err.strip().endswith("""got 'deu'""")
