"""`finetune feedback` redacts the names `finetune prepare` redacts: every comment author of the
ticket (the agent who signed a reply, a CC'd colleague) and the support team the bot reads from
Zendesk (an agent the customer names who never wrote in the ticket). One ticket goes through both
commands, from the loopback Zendesk over HTTP with zenpy; their SFT rows are the same, and no KTO or
DPO row, prompt or completion, keeps a name."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bot.store.partitioned import PartitionedStore
from core.domain import Ticket, Vote
from core.prompt import build_prompt
from draftdesk.cli import main
from finetune.config import ExportConfig, PrepareConfig
from finetune.export import export_zendesk
from finetune.prepare import approximate_tokens, prepare_dataset
from finetune.sample import SAMPLE_PRODUCT, export_pages
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk import ZendeskGateway
from tests.test_promotion import NOW

AIKO, LIN, BEN, SAM, MARTA = 101, 102, 103, 201, 202
NAMES = ("Aiko", "Tanaka", "Lin", "Wei", "Ben", "Okafor", "Sam", "Carter", "Marta", "Kowalski")
INVOICE = 1  # drafted and rated
NIGHTLY = 2  # only exported: Marta answered it, so `prepare`'s export knows her name
TICKETS: dict[int, tuple[str, int, list[tuple[int, str, bool]]]] = {
    INVOICE: (
        "Invoice copy",
        AIKO,
        [
            (AIKO, "Hi, Marta said last week I would get a copy of invoice 2291. Still nothing.", True),
            (
                SAM,
                "Hi Aiko, sorry for the wait: the copy of invoice 2291 is attached. Kind regards, Sam Carter",
                True,
            ),
            (SAM, "Aiko called about it twice.", False),
            (LIN, "Could you send me the copy of invoice 2290 too? Thanks, Lin Wei", True),
            (SAM, "Done, Lin: invoice 2290 is attached as well. Kind regards, Sam Carter", True),
        ],
    ),
    NIGHTLY: (
        "Nightly backups",
        BEN,
        [
            (BEN, "Does the backup run every night?", True),
            (MARTA, "Yes, every night at 2:00.", True),
        ],
    ),
}
SIGNED_DRAFT = "Hi Aiko, the copy of invoice 2291 is attached. Kind regards, Sam Carter"
BAD = "Please wait."


def seeded(zendesk: FakeZendesk) -> None:
    zendesk.add_user(AIKO, "Aiko Tanaka", "aiko@example.com")
    zendesk.add_user(LIN, "Lin Wei", "lin@example.com")  # CC'd by Aiko: an end user
    zendesk.add_user(BEN, "Ben Okafor", "ben@example.com")
    zendesk.add_user(SAM, "Sam Carter", "sam@acme-backup.example", role="agent")
    zendesk.add_user(MARTA, "Marta Kowalski", "marta@acme-backup.example", role="admin")
    for ticket_id, (subject, requester, comments) in TICKETS.items():
        zendesk.add_ticket(ticket_id, subject, requester, status="solved", comments=comments)


def as_it_stood(ticket: Ticket, comment_id: int) -> Ticket:
    """The ticket when ``comment_id`` was its newest comment."""
    end = next(i for i, c in enumerate(ticket.comments) if c.id == comment_id)
    return replace(ticket, comments=ticket.comments[: end + 1])


def rate(
    store: PartitionedStore, ticket: Ticket, round_number: int, drafts: dict[str, tuple[str, list[int]]]
):
    """A round answering the customer side's ``round_number``-th message; its prompt the raw ticket's, as
    a draft made before the bot redacted names recorded it."""
    question = [c for c in ticket.comments if c.by_customer][round_number - 1]
    store.create_round(ticket.id, question.id, [(label, "ft") for label in drafts])
    prompt = build_prompt(as_it_stood(ticket, question.id), approximate_tokens, 2000, SAMPLE_PRODUCT)
    for label, (text, scores) in drafts.items():
        draft_id = f"t{ticket.id}r{round_number}{label}"
        store.save_generated(draft_id, text, None, model_version="v1", prompt=prompt)
        for rater, score in enumerate(scores):
            store.record_vote(Vote(ticket.id, draft_id, "ft", f"U{rater}", score, "reaction", NOW))


def named(text: str) -> list[str]:
    return [name for name in NAMES if re.search(rf"\b{name}\b", text)]


@pytest.fixture
def both_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """(prepare's dataset, feedback's folder) built from the same Zendesk."""
    prepared, feedback = tmp_path / "prepared", tmp_path / "feedback"
    with FakeZendesk(credentials=("agent@example.com", "token")) as zendesk:
        seeded(zendesk)
        zendesk.set_incremental_pages(export_pages(zendesk, list(TICKETS), 20))
        gateway = ZendeskGateway.from_settings(zendesk.url, "agent@example.com", "token")
        export_zendesk(gateway, tmp_path / "export", ExportConfig(requests_per_minute=0), progress=False)
        config = PrepareConfig(pairs="multi_turn", eval_fraction=0.0)
        prepare_dataset(tmp_path / "export", prepared, config, SAMPLE_PRODUCT, progress=False)

        store = PartitionedStore(tmp_path / "store.json")
        ticket = gateway.fetch_ticket(INVOICE)
        store.enqueue(INVOICE, "webhook")
        rate(store, ticket, 1, {"A": (SIGNED_DRAFT, [5, 4]), "B": (BAD, [1, 2])})
        rate(store, ticket, 2, {"A": (BAD, [1])})  # the reply Sam sent is what to prefer
        store.close()
        (tmp_path / "config.toml").write_text(
            f"""
[storage]
path = "./store.json"

[zendesk]
url = "{zendesk.url}"

[worker]
product_name = "{SAMPLE_PRODUCT}"

[finetune.prepare]
pairs = "multi_turn"
eval_fraction = 0.0

[[models]]
name = "ft"
base_model = "base"
"""
        )
        monkeypatch.setenv("ZENDESK_EMAIL", "agent@example.com")
        monkeypatch.setenv("ZENDESK_API_TOKEN", "token")
        code = main(
            ["finetune", "feedback", "--config", str(tmp_path / "config.toml"), "--out", str(feedback)]
        )
        assert code == 0, capsys.readouterr().err
    return prepared, feedback


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def test_prepare_and_feedback_redact_the_same_names(both_datasets: tuple[Path, Path]) -> None:
    prepared, feedback = both_datasets
    trained = [
        (r["prompt"], r["completion"]) for r in rows(prepared / "train.jsonl") if r["ticket_id"] == INVOICE
    ]
    fed_back = [(r["prompt"], r["completion"]) for r in rows(feedback / "sft" / "train.jsonl")]
    assert len(trained) == 2  # Sam's two replies
    assert fed_back == trained
    assert not named(json.dumps(trained))
    assert (
        trained[0][1]
        == " Hi <NAME>, sorry for the wait: the copy of invoice 2291 is attached. Kind regards, <NAME>"
    )


def test_no_kto_or_dpo_row_keeps_a_name(both_datasets: tuple[Path, Path]) -> None:
    _, feedback = both_datasets
    kto, dpo = rows(feedback / "kto" / "train.jsonl"), rows(feedback / "dpo" / "train.jsonl")
    assert len(kto) == 3 and len(dpo) == 2
    for row in kto + dpo:
        assert not named(json.dumps(row)), row
    # The customer named an agent who never wrote in this ticket: the bot reads her name from Zendesk.
    assert all("Customer: Hi, <NAME> said last week" in row["prompt"] for row in kto + dpo)
    [signed] = [row for row in kto if row["label"]]
    assert signed["completion"] == " Hi <NAME>, the copy of invoice 2291 is attached. Kind regards, <NAME>"
    [sent] = [row for row in dpo if row["chosen_from"] == "sent_reply"]
    assert sent["chosen"] == " Done, <NAME>: invoice 2290 is attached as well. Kind regards, <NAME>"
    assert "Customer: Could you send me the copy of invoice 2290 too?" in sent["prompt"]
