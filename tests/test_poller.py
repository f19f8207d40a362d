"""The poller over the real recorded export page, through zenpy and the loopback Zendesk."""

import copy
import json
from datetime import UTC, datetime

import pytest

from bot.drafting.intake import META_CURSOR, Poller
from bot.store.partitioned import PartitionedStore
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk import ZendeskGateway
from tests.fixtures_path import recorded_fixture


def recorded_page() -> dict:
    return json.loads(recorded_fixture("zendesk/incremental_tickets_cursor_page1.json").read_text("utf-8"))[
        "body"
    ]


def final_recorded_page() -> dict:
    return {**recorded_page(), "end_of_stream": True}


def page_with(template: dict, rows: list[tuple[int, str, str]], after: str, eos: bool = True) -> dict:
    tickets = []
    for ticket_id, status, created in rows:
        ticket = copy.deepcopy(template)
        ticket.update(id=ticket_id, status=status, created_at=created, updated_at=created)
        tickets.append(ticket)
    return {"tickets": tickets, "after_cursor": after, "before_cursor": None, "end_of_stream": eos}


@pytest.fixture
def zd():
    with FakeZendesk() as fake:
        yield fake


def gateway(zd: FakeZendesk) -> ZendeskGateway:
    return ZendeskGateway.from_settings(zd.url, "bot@example.com", "token", sleep=lambda _s: None)


def test_poll_queues_new_tickets_and_skips_deleted_closed_and_old(zd, tmp_path):
    first = recorded_page()
    recorded = first["tickets"]
    since = datetime(2023, 9, 18, 17, 0, tzinfo=UTC)
    expected = {
        t["id"]
        for t in recorded
        if t["status"] != "deleted" and datetime.fromisoformat(t["created_at"]) >= since
    }
    assert 0 < len(expected) < 485  # the cut-off really splits the recorded page
    template = next(t for t in recorded if t["status"] == "new")
    second = page_with(
        template,
        [
            (9001, "open", "2023-09-19T08:00:00Z"),
            (9002, "solved", "2023-09-19T08:00:00Z"),
            (9003, "closed", "2023-09-19T08:00:00Z"),
            (9004, "deleted", "2023-09-19T08:00:00Z"),
        ],
        after="Y3Vyc29yMg==",
    )
    third = page_with(template, [(9005, "new", "2023-09-20T08:00:00Z")], after="Y3Vyc29yMw==")
    zd.set_incremental_pages([first, second, third])

    store = PartitionedStore(tmp_path / "s.json")
    poller = Poller(store, gateway(zd), configured_since=since)
    assert poller.poll_once() == len(expected) + 1
    assert {j.ticket_id for j in store.jobs()} == expected | {9001}
    assert store.get_meta(META_CURSOR) == "Y3Vyc29yMg=="
    for job in store.jobs():
        store.finish_job(job.id)
    store.close()  # the process ends (and frees the store for the next one)

    # Restart: a new process resumes from the saved cursor, repeating and missing nothing.
    restarted = Poller(PartitionedStore(tmp_path / "s.json"), gateway(zd), configured_since=since)
    assert restarted.poll_once() == 1
    assert sorted(j.ticket_id for j in restarted.store.jobs() if j.status == "queued") == [9005]
    queries = [r.query for r in zd.requests_to("GET", "/api/v2/incremental/tickets/cursor.json")]
    assert queries[0] == {"start_time": str(int(since.timestamp()))}
    assert queries[-1] == {"cursor": "Y3Vyc29yMg=="}


def test_a_solved_ticket_is_queued_only_if_it_has_drafts_to_measure_against_the_reply(zd, tmp_path):
    template = next(t for t in recorded_page()["tickets"] if t["status"] == "new")
    changes = [(9002, "solved", "2023-09-19T08:00:00Z"), (9003, "closed", "2023-09-19T08:00:00Z")]
    zd.set_incremental_pages([page_with(template, changes, after="Y3Vyc29yMg==")])
    store = PartitionedStore(tmp_path / "s.json")
    store.save_ticket_thread(9002, "CDRAFTS", "1700000000.000100")  # it got drafts before it was solved
    poller = Poller(store, gateway(zd), configured_since=datetime(2023, 9, 1, tzinfo=UTC))
    assert poller.poll_once() == 1
    assert [j.ticket_id for j in store.jobs()] == [9002]


def test_default_since_is_the_first_start(zd, tmp_path):
    zd.set_incremental_pages([final_recorded_page()])  # all created in 2023
    store = PartitionedStore(tmp_path / "s.json")
    first_start = datetime(2026, 1, 1, tzinfo=UTC)
    assert Poller(store, gateway(zd), None, clock=lambda: first_start).poll_once() == 0
    # A later start keeps the first start as the cut-off, not its own start time.
    later = Poller(store, gateway(zd), None, clock=lambda: datetime(2026, 6, 1, tzinfo=UTC))
    assert later.since == first_start


def test_changing_poll_since_restarts_the_export(zd, tmp_path):
    zd.set_incremental_pages([final_recorded_page()])
    store = PartitionedStore(tmp_path / "s.json")
    Poller(store, gateway(zd), datetime(2026, 1, 1, tzinfo=UTC)).poll_once()
    assert store.get_meta(META_CURSOR)
    backfill = Poller(store, gateway(zd), datetime(2023, 1, 1, tzinfo=UTC))
    assert store.get_meta(META_CURSOR) is None
    assert backfill.poll_once() == 485
