import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config import WorkerSettings
from bot.drafting.worker import TicketProcessor, Worker
from bot.slack.parent_status import refresh_parent_status
from bot.store.memory import MemoryStore
from core.domain import JOB_DONE, JOB_FAILED, JOB_QUEUED, Comment, DraftResult, Ticket
from core.ports import TicketNotFound, UpstreamUnavailable
from tests.recording_poster import RecordingPoster

MODELS = ["llama2-7b-ft", "gptj-6b-ft", "llama2-7b"]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


class ScriptedBackend:
    """A model runtime double: drafts name their model, chosen models fail."""

    def __init__(self):
        self.failing: set[str] = set()
        self.raise_all = False
        self.calls: list[dict[str, str]] = []
        self.batches: list[int] = []
        self.reply = "Reply from {model}. Thanks!"

    def count_tokens(self, model_name, text):
        return len(text.split())

    def context_limit(self, model_name):
        return 300

    def generate_many(self, batch):
        self.batches.append(len(batch))
        return [self.generate(prompts) for prompts in batch]

    def generate(self, prompts):
        self.calls.append(dict(prompts))
        if self.raise_all:
            raise RuntimeError("CUDA out of memory")
        return [
            DraftResult(m, None, error="boom")
            if m in self.failing
            else DraftResult(m, self.reply.format(model=m))
            for m in prompts
        ]


class Tickets:
    def __init__(self):
        self.tickets: dict[int, Ticket] = {}

    def fetch_ticket(self, ticket_id):
        if ticket_id not in self.tickets:
            raise TicketNotFound(f"ticket {ticket_id} not found")
        return self.tickets[ticket_id]


def ticket(tid=1, status="new", comments=None):
    comments = comments or [Comment(10, 100, "My backup is stuck <!channel>", True, T0, True)]
    return Ticket(
        tid,
        "Backup stuck <!channel> <http://evil|login>",
        status,
        100,
        "Maria Schmidt",
        T0,
        f"https://x.zendesk.com/agent/tickets/{tid}",
        tuple(comments),
    )


@pytest.fixture
def env():
    """The worker with in-memory doubles of every port: the chat, the store, Zendesk, the models."""
    return worker_with_doubles(
        lambda store, slack: {"parent_status": lambda t: refresh_parent_status(store, slack, t)}
    )


def worker_with_doubles(
    wiring: Callable[[MemoryStore, RecordingPoster], dict[str, Any]],
) -> tuple[RecordingPoster, MemoryStore, ScriptedBackend, Tickets, Worker]:
    """A worker over in-memory doubles; ``wiring(store, chat)`` gives the processor's optional parts."""
    slack, store, backend, tickets = RecordingPoster(), MemoryStore(), ScriptedBackend(), Tickets()
    processor = TicketProcessor(
        store, tickets, slack, backend, MODELS, "CDRAFTS", rng=random.Random(3), **wiring(store, slack)
    )
    worker = Worker(store, processor, WorkerSettings(max_attempts=3, retry_base_seconds=0))
    return slack, store, backend, tickets, worker


def thread_texts(slack, store, tid=1):
    channel, ts = store.ticket_thread(tid)
    return [m.text for m in slack.thread(channel, ts)]


def test_three_blind_drafts_in_one_thread(env):
    slack, store, backend, tickets, worker = env
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    assert worker.run_until_idle() == 1
    messages = slack.thread(*store.ticket_thread(1))
    assert len(messages) == 4  # parent + A, B, C
    assert [c.method for c in slack.calls] == ["post_parent"] + ["post_in_thread"] * 3
    body = str([(m.text, m.blocks) for m in messages])
    for model in MODELS:
        assert model not in str(messages[0].blocks) and f"Reply from {model}" in body
    assert "<!channel>" not in body and "&lt;!channel&gt;" in body
    assert "<http://evil|login>" not in body
    drafts = store.drafts_for_ticket(1)
    assert [d.label for d in drafts] == ["A", "B", "C"]
    assert sorted(d.model for d in drafts) == sorted(MODELS)
    for draft, message in zip(drafts, messages[1:], strict=True):
        assert draft.vote_ts == message.ts
        assert f"Reply from {draft.model}" in str(message.blocks)  # the label → model mapping is stored
    assert store.jobs(JOB_DONE)


def test_the_label_order_is_shuffled_per_ticket(env):
    slack, store, backend, tickets, worker = env
    orders = set()
    for tid in range(1, 9):
        tickets.tickets[tid] = ticket(tid)
        store.enqueue(tid, "webhook")
    worker.run_until_idle()
    for tid in range(1, 9):
        orders.add(tuple(d.model for d in store.drafts_for_ticket(tid)))
    assert len(orders) > 1


def test_one_failing_model_gives_two_drafts_and_a_notice(env):
    slack, store, backend, tickets, worker = env
    backend.failing = {"gptj-6b-ft"}
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    texts = thread_texts(slack, store)
    assert len(texts) == 4  # parent, notice, two drafts
    assert "1 of 3" in texts[1]
    failed = [d for d in store.drafts_for_ticket(1) if d.text is None]
    assert [d.error for d in failed] == ["boom"]


def test_all_models_failing_retries_then_posts_a_notice(env):
    slack, store, backend, tickets, worker = env
    backend.raise_all = True
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    assert len(backend.calls) == 3  # max_attempts
    assert "All 3 models failed" in thread_texts(slack, store)[-1]  # the ticket is visible, not lost
    assert store.jobs(JOB_DONE)


def test_interrupted_posting_resumes_without_duplicates(env):
    slack, store, backend, tickets, worker = env
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    slack.fail_next("post_parent")  # parent fails: retried
    worker.run_until_idle()
    assert len(thread_texts(slack, store)) == 4
    assert len(slack.calls_to("post_parent")) == 1
    # A second ticket: Slack fails after the first draft was posted.
    tickets.tickets[2] = ticket(2)
    store.enqueue(2, "webhook")
    drafts_before = len(slack.calls_to("post_in_thread"))
    original = slack.post_in_thread
    failed = []

    def fail_the_second_draft(channel, thread_ts, text, blocks=None, mark=None):
        if len(slack.calls_to("post_in_thread")) == drafts_before + 1 and not failed:
            failed.append(text)
            slack.fail_next("post_in_thread", code="connection_error")
        return original(channel, thread_ts, text, blocks, mark)

    slack.post_in_thread = fail_the_second_draft
    worker.run_until_idle()
    assert len(thread_texts(slack, store, 2)) == 4  # parent + 3 drafts, none twice
    assert len(slack.calls_to("post_in_thread")) == drafts_before + 3 and len(failed) == 1
    assert len(backend.calls) == 2  # drafts were generated once per ticket, not again on retry


def test_new_customer_comment_starts_round_two_agent_comment_does_not(env):
    slack, store, backend, tickets, worker = env
    first = ticket()
    tickets.tickets[1] = first
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    agent_reply = Comment(11, 900, "Try restarting.", True, T0, False)
    internal = Comment(12, 900, "note", False, T0, False)
    tickets.tickets[1] = replace(first, comments=(*first.comments, agent_reply, internal))
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    assert len(thread_texts(slack, store)) == 4  # nothing new
    customer = Comment(13, 100, "Still stuck after restart.", True, T0, True)
    tickets.tickets[1] = replace(first, comments=(*first.comments, agent_reply, internal, customer))
    store.enqueue(1, "poll")
    worker.run_until_idle()
    texts = thread_texts(slack, store)
    assert len(texts) == 8 and "round 2" in texts[4]
    parent = slack.messages[store.ticket_thread(1)].blocks or []  # seen from the channel, too
    assert any("round 2 drafts are in the thread" in json.dumps(b) for b in parent)
    assert "Still stuck after restart." in backend.calls[-1]["llama2-7b"]
    assert "note" not in backend.calls[-1]["llama2-7b"]  # internal notes never reach a prompt


def test_a_ccd_colleagues_follow_up_is_answered_as_the_customers(env):
    """The Zendesk trigger fires on any end user's public comment; a CC'd colleague's message
    starts a round of its own, and the models read it as the customer's, as in training."""
    slack, store, backend, tickets, worker = env
    first = ticket()
    tickets.tickets[1] = first
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    agent_reply = Comment(11, 900, "Try restarting.", True, T0, False, author_role="agent")
    colleague = Comment(
        12, 300, "Same here, restarting did not help.", True, T0, False, author_role="end-user"
    )
    tickets.tickets[1] = replace(first, comments=(*first.comments, agent_reply, colleague))
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    texts = thread_texts(slack, store)
    assert len(texts) == 8 and "round 2" in texts[4]
    prompt = backend.calls[-1]["llama2-7b"]
    assert prompt.endswith(
        "Agent: Try restarting.\n\nCustomer: Same here, restarting did not help.\n\nAgent:"
    )


def test_closed_deleted_and_missing_tickets(env):
    slack, store, backend, tickets, worker = env
    tickets.tickets[1] = ticket(status="solved")
    store.enqueue(1, "webhook")
    store.enqueue(404, "webhook")
    worker.run_until_idle()
    assert slack.calls == []
    assert [j.ticket_id for j in store.jobs(JOB_FAILED)] == [404]
    assert not store.jobs(JOB_QUEUED)


def test_a_one_megabyte_ticket_is_drafted(env):
    slack, store, backend, tickets, worker = env
    huge = "word " * 200_000
    tickets.tickets[1] = ticket(comments=[Comment(10, 100, huge + "the actual question?", True, T0, True)])
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    assert len(thread_texts(slack, store)) == 4
    prompt = backend.calls[0]["llama2-7b"]
    assert len(prompt.split()) <= 300
    assert "question?" in prompt  # the newest customer text survives truncation


def test_queued_tickets_are_drafted_in_batches(env):
    slack, store, backend, tickets, worker = env
    worker.settings = WorkerSettings(max_attempts=3, retry_base_seconds=0, batch_tickets=4)
    for tid in range(1, 6):
        tickets.tickets[tid] = ticket(tid)
        store.enqueue(tid, "webhook")
    tickets.tickets[3] = ticket(3, status="closed")  # skipped, without holding up the batch
    store.enqueue(404, "webhook")  # missing in Zendesk: fails alone
    assert worker.run_until_idle() == 6
    assert backend.batches == [3, 1]  # tickets 1, 2, 4 together; then 5 (404 and closed had nothing to draft)
    assert {tid for tid in (1, 2, 4, 5) if len(thread_texts(slack, store, tid)) == 4} == {1, 2, 4, 5}
    assert [j.ticket_id for j in store.jobs(JOB_FAILED)] == [404]


def test_a_short_batch_waits_briefly_for_more_tickets(env):
    import threading

    slack, store, backend, tickets, worker = env
    for tid in (1, 2):
        tickets.tickets[tid] = ticket(tid)
    store.enqueue(1, "webhook")

    def second_ticket_arrives():
        store.enqueue(2, "webhook")
        worker.wake.set()

    threading.Timer(0.1, second_ticket_arrives).start()
    jobs = worker.run_batch(fill_wait=5.0)
    assert [j.ticket_id for j in jobs] == [1, 2] and backend.batches == [2]


def test_a_failing_batch_is_retried_per_ticket(env):
    slack, store, backend, tickets, worker = env
    backend.raise_all = True
    for tid in (1, 2):
        tickets.tickets[tid] = ticket(tid)
        store.enqueue(tid, "webhook")
    worker.run_batch()
    assert sorted(j.ticket_id for j in store.jobs(JOB_QUEUED)) == [1, 2]
    assert all("CUDA out of memory" in j.last_error for j in store.jobs(JOB_QUEUED))
    backend.raise_all = False
    worker.run_until_idle()
    assert all(len(thread_texts(slack, store, tid)) == 4 for tid in (1, 2))


class RateLimitedTickets(Tickets):
    def fetch_ticket(self, ticket_id):
        error = UpstreamUnavailable("Zendesk answered 429 after its retries")
        error.retry_after = 600.0
        raise error


def test_the_retry_waits_at_least_what_the_upstream_asked(env):
    slack, store, backend, tickets, worker = env
    worker.processor.zendesk = RateLimitedTickets()
    worker.settings = WorkerSettings(max_attempts=3, retry_base_seconds=10)
    store.enqueue(1, "webhook")
    before = datetime.now(UTC)
    worker.run_batch()
    [job] = store.jobs()
    assert job.status == JOB_QUEUED and job.attempts == 1
    assert (job.not_before - before).total_seconds() >= 600  # not the worker's own 10 s


# ---- exactly once: a step cut off between a Slack post and its record is found, not repeated ----


def posted_then_forgotten(store, slack, tid, what):
    """Simulate a process killed right after Slack took a message and before the store recorded it:
    let the worker run with the store's record of ``what`` dropped, then run it again."""
    original = {
        "parent": store.save_ticket_thread,
        "draft": store.add_draft_message,
        "notice": store.mark_notice_posted,
    }[what]
    crashed = []

    def dropped(*args):
        if not crashed:
            crashed.append(args)
            raise KeyboardInterrupt  # stands in for the kill: nothing after it runs
        return original(*args)

    setattr(store, original.__name__, dropped)
    return crashed


@pytest.mark.parametrize("what", ["parent", "draft", "notice"])
def test_a_message_posted_but_not_recorded_is_found_in_slack_not_posted_again(env, what):
    slack, store, backend, tickets, worker = env
    backend.failing = {"gptj-6b-ft"}  # so there is a notice
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    crashed = posted_then_forgotten(store, slack, 1, what)
    with pytest.raises(KeyboardInterrupt):
        worker.run_until_idle()
    assert crashed
    store.requeue_interrupted_jobs()  # what `draftdesk run` does at start-up
    worker.run_until_idle()
    parents = slack.calls_to("post_parent")
    assert len(parents) == 1
    texts = [m.text for m in slack.thread(*store.ticket_thread(1))]
    assert len(texts) == 4 and sum("1 of 3" in t for t in texts) == 1  # parent, notice, two drafts
    assert all(d.vote_ts for d in store.drafts_for_ticket(1) if d.text)
    assert len(backend.calls) == 1  # nothing drafted twice either


def test_a_parent_posted_before_a_kill_is_adopted_with_one_look_at_the_channel(env):
    slack, store, backend, tickets, worker = env
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    posted_then_forgotten(store, slack, 1, "parent")
    with pytest.raises(KeyboardInterrupt):
        worker.run_until_idle()
    assert store.ticket_thread(1) is None and store.thread_pending(1) is not None
    store.requeue_interrupted_jobs()
    worker.run_until_idle()
    [parent] = slack.calls_to("post_parent")
    assert store.ticket_thread(1) == ("CDRAFTS", parent.ts) and store.thread_pending(1) is None
    assert len(slack.calls_to("marked_in_channel")) == 1


def test_a_first_attempt_reads_nothing_back_from_slack(env):
    slack, store, backend, tickets, worker = env
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    assert [c.method for c in slack.calls] == ["post_parent"] + ["post_in_thread"] * 3
    marks = [m.mark for m in slack.thread(*store.ticket_thread(1))]
    assert [m.event_type for m in marks] == ["draftdesk_ticket"] + ["draftdesk_draft"] * 3
    assert {dict(m.payload)["draft_id"] for m in marks[1:]} == {"t1r1A", "t1r1B", "t1r1C"}


def test_a_webhook_delivered_five_times_posts_the_failure_notice_once(env):
    slack, store, backend, tickets, worker = env
    backend.failing = {"gptj-6b-ft"}
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    first = store.claim_next_job()  # a delivery is being worked on...
    for _ in range(4):
        store.enqueue(1, "webhook")  # ...while the others arrive: one more job is queued
    store.retry_job(first.id, "re-run with the others", datetime.now(UTC))
    worker.settings = WorkerSettings(max_attempts=3, retry_base_seconds=0, batch_tickets=8)
    worker.run_until_idle()  # both jobs of the ticket in one batch: they run one after the other
    texts = thread_texts(slack, store)
    assert sum("1 of 3" in t for t in texts) == 1 and len(texts) == 4


def test_without_the_history_scopes_a_retry_still_posts_and_says_why_it_could_not_look(env, caplog):
    slack, store, backend, tickets, worker = env
    first = ticket()
    tickets.tickets[1] = first
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    customer = Comment(13, 100, "Still stuck.", True, T0, True)
    tickets.tickets[1] = replace(first, comments=(*first.comments, customer))
    store.enqueue(1, "webhook")
    slack.fail_next("marked_in_thread", code="missing_scope")  # an app installed without channels:history
    worker.run_until_idle()
    assert len(thread_texts(slack, store)) == 8  # round 2 is posted all the same
    assert "one may be posted twice" in caplog.text


def test_models_read_the_ticket_cleaned_and_redacted_as_in_training(env):
    slack, store, backend, tickets, worker = env
    written = (
        "Hi,\n\nMy backup at 10.0.0.7 is stuck, call me on +49 30 1234567.\n\nThanks,\nMaria Schmidt\n\n"
        "On Mon, 3 Mar 2025 at 10:00, Acme Support <help@acme.example> wrote:\n> Please send the log."
    )
    tickets.tickets[1] = ticket(comments=[Comment(10, 100, written, True, T0, True)])
    store.enqueue(1, "webhook")
    assert worker.run_until_idle() == 1
    prompt = backend.calls[0][MODELS[0]]
    assert "My backup at <IP> is stuck, call me on <PHONE>." in prompt
    for raw in ("10.0.0.7", "1234567", "Maria", "Schmidt", "Please send the log", "help@acme.example"):
        assert raw not in prompt
    # Only the models' copy is cleaned: the thread still names the requester.
    assert "Maria" in str(slack.thread(*store.ticket_thread(1))[0].blocks)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("Please send the invoice to my address.", "We sent it to maria@example.com."),
        # Left for the agent: shown highlighted (Slack-escaped), and the send dialog asks for it.
        ("Please send the invoice to billing@company.example.", "We sent it to `&lt;EMAIL&gt;`."),
    ],
)
def test_a_drafts_email_placeholder_is_filled_only_when_it_can_only_be_the_requesters(env, body, shown):
    slack, store, backend, tickets, worker = env
    backend.reply = "We sent it to <EMAIL>."
    tickets.tickets[1] = replace(
        ticket(comments=[Comment(10, 100, body, True, T0, True)]), requester_email="maria@example.com"
    )
    store.enqueue(1, "webhook")
    assert worker.run_until_idle() == 1
    drafts = thread_texts(slack, store)[1:]
    assert len(drafts) == 3 and all(shown in text for text in drafts)
