"""The bot drafts from exactly the prompt a model was trained on: for each ticket of the bundled
sample, the worker's prompt (the ticket read from a loopback Zendesk, its passages from the bot's
Help Center index) equals the one `finetune prepare --grounding` wrote, byte for byte; the raw
ticket's sign-offs, quoted mail and personal data never reach a model. Later answers too: a CC'd
colleague writes as the customer, agents' names are redacted, and comments training leaves out
(a reply that only quotes, an author Zendesk no longer knows) are left out when drafting."""

from __future__ import annotations

import json
import random
from pathlib import Path

from bot.drafting.grounding import HelpCenterIndex, HelpCenterSources
from bot.drafting.staff_names import StaffNames
from bot.drafting.worker import PreparedRound, TicketProcessor
from bot.store.memory import MemoryStore
from core.domain import DraftResult
from finetune.config import ExportConfig, PrepareConfig
from finetune.export import export_zendesk
from finetune.prepare import approximate_tokens, prepare_dataset
from finetune.sample import SAMPLE_PRODUCT, export_pages, load_sample, seed_users_and_articles
from integrations.grounding_config import GroundingSettings
from integrations.language_config import LanguageSettings
from integrations.language_detector import TicketLanguages
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk import ZendeskGateway
from tests.recording_poster import RecordingPoster

CONFIG = PrepareConfig(eval_fraction=0.25)
GROUNDING = GroundingSettings(locales=("en-us",), prompt_tokens=80)
MODEL = "grounded-ft"


class CountingBackend:
    """Counts tokens as `prepare` does without a tokenizer; never asked to generate here."""

    def count_tokens(self, model_name: str, text: str) -> int:
        return approximate_tokens(text)

    def context_limit(self, model_name: str) -> int:
        return CONFIG.max_prompt_tokens

    def generate_many(self, batch: list[dict[str, str]]) -> list[list[DraftResult]]:
        raise AssertionError("no drafts in this test")


def grounded_processor(zendesk: FakeZendesk, tmp_path: Path) -> TicketProcessor:
    """The worker's ticket processor for the grounded model, reading ``zendesk`` and its Help Center
    through the real clients."""
    gateway = ZendeskGateway.from_settings(zendesk.url, "agent@example.com", "token")
    index = HelpCenterIndex(tmp_path / "helpcenter.json", GROUNDING.locales)
    index.refresh(gateway)
    return TicketProcessor(
        MemoryStore(),
        gateway,
        RecordingPoster(),
        CountingBackend(),
        [MODEL],
        "CDRAFTS",
        product_name=SAMPLE_PRODUCT,
        rng=random.Random(1),
        sources=HelpCenterSources(index, [MODEL], articles_shown=3, prompt_tokens=GROUNDING.prompt_tokens),
        staff_names=StaffNames(gateway).names,
        languages=TicketLanguages(LanguageSettings()),  # as `draftdesk run` decides each round's
    )


def seeded_zendesk(zendesk: FakeZendesk, ticket_ids: set[int]) -> None:
    """Each ticket as it stood when it arrived: the customer's first message, as they wrote it."""
    sample = load_sample()
    seed_users_and_articles(zendesk, sample)
    for ticket in sample.tickets:
        if ticket["id"] in ticket_ids:
            first = next(c for c in sample.comments[ticket["id"]] if c["public"])
            zendesk.add_ticket(
                ticket["id"],
                ticket["subject"],
                ticket["requester_id"],
                comments=[(ticket["requester_id"], first["body"], True)],
            )


def test_the_bot_drafts_from_the_prompts_prepare_trained_on(export_dir: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    prepare_dataset(export_dir, dataset, CONFIG, SAMPLE_PRODUCT, progress=False, grounding=GROUNDING)
    rows = [json.loads(line) for name in ("train.jsonl", "eval.jsonl") for line in (dataset / name).open()]
    first_answers = {row["ticket_id"]: row for row in rows if len(row["context"]) == 1}
    assert len(first_answers) >= 80
    with FakeZendesk() as zendesk:
        seeded_zendesk(zendesk, set(first_answers))
        processor = grounded_processor(zendesk, tmp_path)
        raw_texts = []
        for ticket_id, row in sorted(first_answers.items()):
            prepared = processor.prepare(ticket_id)
            assert isinstance(prepared, PreparedRound)
            assert prepared.prompts[MODEL] == row["prompt"], ticket_id
            raw_texts.append(prepared.ticket.comments[0].body)
    # What the cleaning took out was there: the customers' sign-offs with their names, their IPs.
    assert sum("<IP>" in row["prompt"] for row in first_answers.values()) >= 5
    assert sum(any(c.isdigit() for c in text) and "IP" in text for text in raw_texts) >= 5
    names = [u["name"] for u in load_sample().users if u.get("role") == "end-user"]
    assert any(name in text for text in raw_texts for name in names)
    assert not any(name in row["prompt"] for row in first_answers.values() for name in names)


REQUESTER, COLLEAGUE, MARTA, TOM, GONE = 101, 102, 201, 202, 999
CONVERSATIONS: dict[int, tuple[str, list[tuple[int, str, bool]]]] = {
    1: (
        "Backup stuck for Aiko",
        [
            (REQUESTER, "Hi, my backup is stuck at 99% since Monday.\n\nThanks,\nAiko Tanaka", True),
            (
                MARTA,
                "Hi Aiko,\n\nplease restart the backup agent and tell me what it says.\n\nBest,\nMarta",
                True,
            ),
            (MARTA, "Checked the logs of Aiko's machine: disk nearly full.", False),
            (
                REQUESTER,
                "Restarted, now it says error 42.\n\n"
                "On Tue, 4 Mar 2025, Marta Kowalski <marta@parcelo.example> wrote:\n"
                "> please restart the backup agent",
                True,
            ),
            (COLLEAGUE, "Same error 42 on my laptop. Lin Wei", True),
            (TOM, "Hi Aiko and Lin, error 42 means the disk is full: free 2 GB and run it again.", True),
        ],
    ),
    2: (
        "New invoice address",
        [
            (
                REQUESTER,
                "billing@parcelo.example did not answer: please send my invoices to our new office, copy to "
                "aiko@example.com.",
                True,
            ),
            (GONE, "Automatic reply: we received your request.", True),
            (
                MARTA,
                "Done. For later changes, write to billing@parcelo.example or call +49 30 1234 5678.",
                True,
            ),
        ],
    ),
    3: (
        "Export fails",
        [
            (REQUESTER, "Exporting my data fails with a timeout after ten minutes.", True),
            (TOM, "Could you send the export's log file, please?", True),
            (
                REQUESTER,
                "On Wed, 5 Mar 2025, Tom Berger wrote:\n> Could you send the export's log file, please?",
                True,
            ),
            (REQUESTER, "Any news? The log is attached. Aiko", True),
            (TOM, "Thanks, the log shows a proxy timeout: raise it to 60 seconds in the settings.", True),
        ],
    ),
    4: (  # an agent named who never wrote in this ticket: a name in training, so one when drafting
        "Slow exports",
        [
            (REQUESTER, "Marta said last week that slow exports would be fixed. Are they?", True),
            (TOM, "Yes: since version 4.2 an export takes under a minute.", True),
        ],
    ),
}


INVOICES_ARTICLE = (
    "<p>Invoices go to the billing address in your account settings.</p>"
    "<p>To change where invoices go, write to billing@parcelo.example or call +49 30 1234 5678.</p>"
)


def add_people_and_articles(zendesk: FakeZendesk) -> None:
    zendesk.add_user(REQUESTER, "Aiko Tanaka", "aiko@example.com")
    zendesk.add_user(COLLEAGUE, "Lin Wei", "lin@example.com")  # CC'd by Aiko: an end user
    zendesk.add_user(MARTA, "Marta Kowalski", "marta@parcelo.example", role="agent")
    zendesk.add_user(TOM, "Tom Berger", "tom@parcelo.example", role="admin")
    zendesk.add_article(
        5001, "Invoices and billing addresses", INVOICES_ARTICLE, updated_at="2025-01-01T00:00:00Z"
    )
    zendesk.add_article(5002, "Backups stuck at 99%", "<p>A full disk stops a backup at 99%.</p>")


def test_later_answers_read_the_same_in_training_and_drafting(tmp_path: Path) -> None:
    config = PrepareConfig(pairs="multi_turn", eval_fraction=0.0)
    export, dataset = tmp_path / "export", tmp_path / "dataset"
    with FakeZendesk() as zendesk:
        add_people_and_articles(zendesk)
        for ticket_id, (subject, comments) in CONVERSATIONS.items():
            zendesk.add_ticket(ticket_id, subject, REQUESTER, status="solved", comments=comments)
        zendesk.set_incremental_pages(export_pages(zendesk, list(CONVERSATIONS), 20))
        gateway = ZendeskGateway.from_settings(zendesk.url, "agent@example.com", "token")
        export_zendesk(
            gateway, export, ExportConfig(locales=["en-us"], requests_per_minute=0), progress=False
        )
    prepare_dataset(export, dataset, config, SAMPLE_PRODUCT, progress=False, grounding=GROUNDING)
    trained: dict[int, set[str]] = {}
    completions: dict[int, list[str]] = {}
    for line in (dataset / "train.jsonl").open():
        row = json.loads(line)
        trained.setdefault(row["ticket_id"], set()).add(row["prompt"])
        completions.setdefault(row["ticket_id"], []).append(row["completion"])
    assert {ticket_id: len(prompts) for ticket_id, prompts in trained.items()} == {1: 2, 2: 1, 3: 2, 4: 1}

    drafted: dict[int, set[str]] = {}
    with FakeZendesk() as zendesk:
        add_people_and_articles(zendesk)
        processor = grounded_processor(zendesk, tmp_path)
        for ticket_id, (subject, comments) in CONVERSATIONS.items():
            for end, (author, _, public) in enumerate(comments):
                if author not in (MARTA, TOM) or not public:
                    continue
                # The ticket as it stood when the customer's side last wrote before this answer.
                zendesk.add_ticket(ticket_id * 100 + end, subject, REQUESTER, comments=comments[:end])
                prepared = processor.prepare(ticket_id * 100 + end)
                assert isinstance(prepared, PreparedRound)
                drafted.setdefault(ticket_id, set()).add(prepared.prompts[MODEL])
    for ticket_id, prompts in trained.items():
        assert prompts <= drafted[ticket_id], ticket_id

    [later] = [p for p in trained[1] if "error 42" in p]
    assert later.endswith("Customer: Same error 42 on my laptop. <NAME>\n\nAgent:")
    assert "Marta" not in later and "Kowalski" not in later and "disk nearly full" not in later
    card = json.loads((dataset / "card.json").read_text())
    assert card["public_contacts"] == {"emails": ["billing@parcelo.example"], "phones": ["493012345678"]}
    [invoice] = trained[2]
    assert "Automatic reply" not in invoice and "copy to <EMAIL>." in invoice
    assert "Customer: billing@parcelo.example did not answer" in invoice
    # The address and number the Help Center publishes are the company's: the passage and the
    # answer keep them, so the model learns to give them rather than an <EMAIL> the bot would fill.
    assert "write to billing@parcelo.example or call +49 30 1234 5678" in invoice
    assert completions[2] == [
        " Done. For later changes, write to billing@parcelo.example or call +49 30 1234 5678."
    ]
    [slow] = trained[4]
    assert "Customer: <NAME> said last week" in slow and "Marta" not in slow
    [follow_up] = [p for p in trained[3] if "Any news" in p]
    assert follow_up.count("log file") == 1  # the reply that only quoted it is left out
