"""The bot drafts from exactly the prompt a model was trained on: for each ticket of the bundled
sample, the worker's prompt (the ticket read from a loopback Zendesk, its passages from the bot's
Help Center index) equals the one `finetune prepare --grounding` wrote, byte for byte; the raw
ticket's sign-offs, quoted mail and personal data never reach a model."""

from __future__ import annotations

import json
import random
from pathlib import Path

from bot.grounding import HelpCenterIndex, HelpCenterSources
from bot.memory_store import MemoryStore
from bot.worker import PreparedRound, TicketProcessor
from core.domain import DraftResult
from finetune.config import PrepareConfig
from finetune.prepare import approximate_tokens, prepare_dataset
from finetune.sample import SAMPLE_PRODUCT, load_sample, seed_users_and_articles
from integrations.grounding_config import GroundingSettings
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
        gateway = ZendeskGateway.from_settings(zendesk.url, "agent@example.com", "token")
        index = HelpCenterIndex(tmp_path / "helpcenter.json", GROUNDING.locales)
        index.refresh(gateway)
        sources = HelpCenterSources(index, [MODEL], articles_shown=3, prompt_tokens=GROUNDING.prompt_tokens)
        processor = TicketProcessor(
            MemoryStore(),
            gateway,
            RecordingPoster(),
            CountingBackend(),
            [MODEL],
            "CDRAFTS",
            product_name=SAMPLE_PRODUCT,
            rng=random.Random(1),
            sources=sources,
        )
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
