"""Models per language (issue 28 items 1 and 3): each round's language is decided once, from the
ticket, and recorded; only the models that write it draft; the thread says when others do not."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.config import WorkerSettings
from bot.drafting.worker import TicketProcessor, Worker
from bot.store.memory import MemoryStore
from core.domain import JOB_DONE, Comment, Ticket
from integrations.language_config import LanguageSettings
from integrations.language_detector import TicketLanguages
from tests.recording_poster import RecordingPoster
from tests.test_worker import ScriptedBackend, Tickets

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MODELS = {"llama2-7b-ft": ("en",), "llama2-7b-ft-de": ("de",), "llama2-7b": ()}
GERMAN = "Hallo, mein Backup bleibt seit gestern bei 99 Prozent stehen. Was kann ich tun?"
ENGLISH = "Hi, my backup has been stuck at 99 percent since yesterday. What can I do?"
FRENCH = "Bonjour, ma sauvegarde est bloquée à 99 pour cent depuis hier. Que puis-je faire ?"


def ticket(tid: int, body: str, locale: str = "en-US") -> Ticket:
    comment = Comment(tid * 10, 100, body, True, T0, True)
    return Ticket(
        tid, "Backup", "new", 100, "Jonas Weber", T0, f"u/{tid}", (comment,), requester_locale=locale
    )


def setup(models: dict[str, tuple[str, ...]]):
    slack, store, backend, tickets = RecordingPoster(), MemoryStore(), ScriptedBackend(), Tickets()
    processor = TicketProcessor(
        store,
        tickets,
        slack,
        backend,
        list(models),
        "CDRAFTS",
        rng=random.Random(3),
        languages=TicketLanguages(LanguageSettings()),
        model_languages=models,
    )
    worker = Worker(store, processor, WorkerSettings(max_attempts=2, retry_base_seconds=0))
    return slack, store, backend, tickets, worker


def thread(slack: RecordingPoster, store: MemoryStore, tid: int) -> list[str]:
    return [m.text for m in slack.thread(*store.ticket_thread(tid))]


def test_a_german_ticket_gets_drafts_only_from_the_models_that_write_german():
    slack, store, backend, tickets, worker = setup(MODELS)
    tickets.tickets[1] = ticket(1, GERMAN)  # Zendesk's default locale: the text decides
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    drafts = store.drafts_for_ticket(1)
    assert sorted(d.model for d in drafts) == ["llama2-7b", "llama2-7b-ft-de"]
    assert [d.label for d in drafts] == ["A", "B"]  # blind labels as usual
    assert {d.language for d in drafts} == {"de"}
    assert store.round_for(1, 10).language == "de"
    assert all("Write the reply in German" in prompt for call in backend.calls for prompt in call.values())
    texts = thread(slack, store, 1)
    assert len(texts) == 4  # parent, the language line, two drafts
    assert (
        texts[1]
        == "This ticket is in German: no other model writes German; the 2 drafts below are all there is."
    )
    assert not any(name in texts[1] for name in MODELS)  # which models stays hidden
    parent = slack.thread(*store.ticket_thread(1))[0]
    assert "*Status:* new    *Language:* German" in str(parent.blocks)  # the queue it belongs to
    assert store.jobs(JOB_DONE)


def test_an_english_ticket_keeps_the_english_prompt_and_skips_the_german_model():
    slack, store, backend, tickets, worker = setup(MODELS)
    tickets.tickets[2] = ticket(2, ENGLISH, locale="de")  # a long text wins over the locale
    store.enqueue(2, "webhook")
    worker.run_until_idle()
    assert sorted(d.model for d in store.drafts_for_ticket(2)) == ["llama2-7b", "llama2-7b-ft"]
    assert all("Write the reply in" not in p for call in backend.calls for p in call.values())
    assert "no other model writes English" in thread(slack, store, 2)[1]


def test_a_ticket_no_model_writes_gets_the_line_and_no_drafts():
    slack, store, backend, tickets, worker = setup({"en-model": ("en",), "de-model": ("de",)})
    tickets.tickets[3] = ticket(3, FRENCH)
    store.enqueue(3, "webhook")
    worker.run_until_idle()
    assert store.drafts_for_ticket(3) == []
    assert backend.calls == []
    texts = thread(slack, store, 3)
    assert texts[1:] == ["This ticket is in French: no model writes French, so there are no drafts."]
    assert store.round_for(3, 30).posted and store.jobs(JOB_DONE)


def test_when_every_model_writes_the_language_the_thread_has_no_language_line():
    slack, store, backend, tickets, worker = setup({"a": (), "b": ("de", "en")})
    tickets.tickets[4] = ticket(4, GERMAN)
    store.enqueue(4, "webhook")
    worker.run_until_idle()
    texts = thread(slack, store, 4)
    assert len(texts) == 3 and not any("This ticket is in" in t for t in texts)


@pytest.mark.parametrize(("body", "locale", "language"), [("Danke!", "de", "de"), ("Danke!", "", "en")])
def test_a_short_message_takes_the_requesters_locale_or_the_default(body, locale, language):
    slack, store, backend, tickets, worker = setup(MODELS)
    tickets.tickets[5] = ticket(5, body, locale=locale)
    store.enqueue(5, "webhook")
    worker.run_until_idle()
    assert store.round_for(5, 50).language == language


def test_the_language_is_decided_once_per_round_and_kept_on_a_retry():
    slack, store, backend, tickets, worker = setup(MODELS)
    tickets.tickets[6] = ticket(6, GERMAN)
    backend.raise_all = True  # the first attempt records the round, then fails
    store.enqueue(6, "webhook")
    worker.run_batch()
    assert store.round_for(6, 60).language == "de"
    backend.raise_all = False
    tickets.tickets[6] = ticket(6, GERMAN.replace("Hallo", "Hello"), locale="fr")
    worker.run_until_idle()
    assert store.round_for(6, 60).language == "de"
    assert sorted(d.model for d in store.drafts_for_ticket(6)) == ["llama2-7b", "llama2-7b-ft-de"]


def test_a_short_follow_up_keeps_the_language_of_the_earlier_rounds():
    slack, store, backend, tickets, worker = setup(MODELS)
    tickets.tickets[7] = ticket(7, GERMAN)  # Zendesk's default locale (en-US): the text decides
    store.enqueue(7, "webhook")
    worker.run_until_idle()
    first = tickets.tickets[7].comments[0]
    thanks = Comment(71, 100, "Danke!", True, T0, True)  # too short to read: not the locale either
    tickets.tickets[7] = replace(tickets.tickets[7], comments=(first, thanks))
    store.enqueue(7, "webhook")
    worker.run_until_idle()
    assert store.round_for(7, 71).language == "de"
    english = Comment(72, 100, ENGLISH, True, T0, True)  # a long message in another language decides
    tickets.tickets[7] = replace(tickets.tickets[7], comments=(first, thanks, english))
    store.enqueue(7, "webhook")
    worker.run_until_idle()
    assert store.round_for(7, 72).language == "en"
