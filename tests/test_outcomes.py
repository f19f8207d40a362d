"""The reply actually sent: drafts measured against the agent's public reply, once per round,
through the worker reading the ticket; per-model sent rate and similarity."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.reporting.outcomes import first_agent_reply, measure, outcome_stats, replies_observer, similarity
from bot.store.memory import MemoryStore
from core.domain import Comment, DraftOutcome, DraftRecord
from core.placeholders import KnownValues
from tests.test_worker import MODELS, T0, ticket, worker_with_doubles

REPLY = "Reply from llama2-7b-ft. Thanks! Please restart the backup agent too."


def test_similarity_is_chrf_and_normalised_edit_distance():
    assert similarity("Please restart the backup.", "Please restart the backup.") == (100.0, 0.0)
    chrf, distance = similarity("Please restart the backup.", "Please restart the backup agent.")
    assert 50 < chrf < 100 and 0 < distance < 0.3
    unrelated = similarity("Your invoice is attached.", "Please restart the backup agent.")
    assert unrelated[0] < chrf and unrelated[1] > distance


def test_the_reply_is_the_first_public_agent_comment_after_the_question():
    question = Comment(10, 100, "My backup is stuck", True, T0, True)
    internal = Comment(11, 900, "looking", False, T0, False)
    reply = Comment(12, 900, "Restart it.", True, T0, False)
    later = Comment(13, 900, "Any news?", True, T0, False)
    t = ticket(comments=[Comment(9, 900, "Welcome", True, T0, False), question, internal, reply, later])
    assert first_agent_reply(t, question) == reply
    assert first_agent_reply(ticket(comments=[question, internal]), question) is None


def test_a_ccd_colleagues_comment_is_not_the_agents_reply():
    question = Comment(10, 100, "My backup is stuck", True, T0, True)
    colleague = Comment(11, 300, "Mine too", True, T0, False, author_role="end-user")
    reply = Comment(12, 900, "Restart it.", True, T0, False, author_role="agent")
    assert first_agent_reply(ticket(comments=[question, colleague, reply]), question) == reply
    automatic = Comment(11, 666, "We got your request.", True, T0, False, author_role="unknown")
    assert first_agent_reply(ticket(comments=[question, automatic, reply]), question) == reply


def test_measure_skips_failed_drafts_and_marks_the_one_sent():
    reply = Comment(12, 900, "Please restart the backup.", True, T0 + timedelta(hours=1), False)
    drafts = [
        DraftRecord(
            "t1r1A", 1, "t1r1", 1, "A", "m1", "Please restart the backup.", None, "C", ("1.1",), "U1"
        ),
        DraftRecord("t1r1B", 1, "t1r1", 1, "B", "m2", "No idea.", None, "C", ("1.2",), None),
        DraftRecord("t1r1C", 1, "t1r1", 1, "C", "m3", None, "boom", None, (), None),
    ]
    outcomes = measure(drafts, reply)
    a = outcomes[0]
    assert (a.draft_id, a.sent, a.chrf, a.edit_distance) == ("t1r1A", True, 100.0, 0.0)
    assert [o.draft_id for o in outcomes] == ["t1r1A", "t1r1B"] and not outcomes[1].sent
    assert all(o.replied_at == reply.created_at and o.reply_comment_id == 12 for o in outcomes)


def test_a_draft_is_measured_as_agents_saw_it_with_its_placeholders_filled():
    reply = Comment(12, 900, "Hi Maria, please restart the backup.", True, T0, False)
    text = "Hi <NAME>, please restart the backup."
    draft = DraftRecord("t1r1A", 1, "t1r1", 1, "A", "m1", text, None, "C", ("1.1",), None)
    [filled] = measure([draft], reply, KnownValues("Maria Schmidt", "maria@example.com"))
    assert (filled.chrf, filled.edit_distance) == (100.0, 0.0)
    [unfilled] = measure([draft], reply)  # nothing known: compared as written
    assert unfilled.chrf < 100.0


def test_stats_per_model_sent_rate_mean_chrf_and_median_distance():
    def outcome(model, sent, chrf, distance, n=0):
        return DraftOutcome(n, f"t{n}r1A", model, 1, sent, chrf, distance, T0)

    rows = [
        outcome("m1", True, 80.0, 0.1, 1),
        outcome("m1", False, 40.0, 0.5, 2),
        outcome("m1", False, 60, 0.3, 3),
    ]
    [m1, m2] = outcome_stats(rows, ["m1", "m2"])
    assert (m1.n, m1.sent, m1.sent_pct, m1.mean_chrf, m1.median_edit_distance) == (3, 1, 33.3, 60.0, 0.3)
    assert (m2.n, m2.sent_pct, m2.mean_chrf) == (0, None, None)


@pytest.fixture
def env():
    _, store, _, tickets, worker = worker_with_doubles(
        lambda store, _: {"observe_replies": replies_observer(store)}
    )
    return store, tickets, worker


def test_the_worker_measures_each_round_once_when_the_agent_has_replied(env):
    store, tickets, worker = env
    first = ticket()
    tickets.tickets[1] = first
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    assert store.outcomes() == []  # drafted, nobody replied yet
    draft_a = next(d for d in store.drafts_for_ticket(1) if d.model == "llama2-7b-ft")
    store.mark_sent(draft_a.id, "UAGENT1")
    reply = Comment(11, 900, REPLY, True, T0 + timedelta(hours=2), False)
    tickets.tickets[1] = replace(first, status="solved", comments=(*first.comments, reply))
    store.enqueue(1, "poll")  # the poller queues a solved ticket that has drafts
    worker.run_until_idle()
    outcomes = {o.model: o for o in store.outcomes()}
    assert set(outcomes) == set(MODELS)
    assert outcomes["llama2-7b-ft"].sent and not outcomes["gptj-6b-ft"].sent
    assert outcomes["llama2-7b-ft"].chrf > outcomes["gptj-6b-ft"].chrf  # its draft is the reply's start
    assert store.outcomes(T0 + timedelta(hours=2), T0 + timedelta(hours=3)) == store.outcomes()
    assert store.outcomes(until=T0 + timedelta(hours=2)) == []
    # Read again (another update): nothing is measured twice, a later reply changes nothing.
    later = Comment(12, 900, "Anything else?", True, T0 + timedelta(hours=5), False)
    tickets.tickets[1] = replace(first, status="solved", comments=(*first.comments, reply, later))
    store.enqueue(1, "poll")
    worker.run_until_idle()
    assert {o.model: o for o in store.outcomes()} == outcomes


def test_a_failing_measurement_never_stops_drafting(env, monkeypatch):
    store, tickets, worker = env
    monkeypatch.setattr(MemoryStore, "outcome", lambda self, draft_id: 1 / 0)
    first = ticket()
    tickets.tickets[1] = first
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    reply = Comment(11, 900, REPLY, True, T0 + timedelta(hours=2), False)
    customer = Comment(12, 100, "Still stuck", True, T0 + timedelta(hours=3), True)
    tickets.tickets[1] = replace(first, comments=(*first.comments, reply, customer))
    store.enqueue(1, "webhook")
    worker.run_until_idle()
    assert len({d.round_id for d in store.drafts_for_ticket(1)}) == 2  # round 2 was still drafted


def test_stores_keep_the_first_outcome_of_a_draft(tmp_path):
    from bot.store.partitioned import PartitionedStore

    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    for store in (MemoryStore(), PartitionedStore(tmp_path / "b.json")):
        first = DraftOutcome(7, "t7r1A", "m1", 11, True, 71.5, 0.2, at)
        store.record_outcomes([first, replace(first, draft_id="t7r1B", model="m2", sent=False)])
        store.record_outcomes([replace(first, chrf=1.0)])  # measured again: the first is kept
        assert store.outcome("t7r1A") == first and store.outcome("t7r1C") is None
        assert [o.draft_id for o in store.outcomes(at, at + timedelta(seconds=1))] == ["t7r1A", "t7r1B"]
        assert store.outcomes(at + timedelta(seconds=1)) == []
