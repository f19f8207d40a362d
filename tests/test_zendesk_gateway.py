"""ZendeskGateway (integrations/zendesk.py) through zenpy against the loopback FakeZendesk."""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from core.domain import Agent, TicketChange
from integrations.standins.zendesk_server import DEFAULT_AGENT_ID, FakeZendesk
from integrations.zendesk import (
    RetryPolicy,
    TicketNotFound,
    ZendeskAccessDenied,
    ZendeskGateway,
    ZendeskUnavailable,
)
from tests.fixtures_path import recorded_fixture

EMAIL = "bot@acme.example"
TOKEN = "test-api-token"
REQUESTER = 7
AGENT = 8
INCREMENTAL = "/api/v2/incremental/tickets/cursor.json"


@pytest.fixture
def zd() -> Iterator[FakeZendesk]:
    with FakeZendesk() as fake:
        fake.add_user(REQUESTER, "Ada Lovelace", "ada@example.com")
        fake.add_user(AGENT, "Grace Hopper", "grace@acme.example", role="agent")
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def gateway(zd: FakeZendesk, sleeps: list[float]) -> ZendeskGateway:
    return ZendeskGateway.from_settings(zd.url, EMAIL, TOKEN, timeout=5, sleep=sleeps.append)


def _seed_conversation(zd: FakeZendesk) -> None:
    zd.add_ticket(42, "Printer on fire", REQUESTER, status="open", created_at="2024-03-01T09:00:00Z")
    zd.add_comment(42, REQUESTER, "My printer is on fire.", created_at="2024-03-01T09:00:00Z")
    zd.add_comment(42, AGENT, "Escalating to hardware.", public=False, created_at="2024-03-01T09:05:00Z")
    zd.add_comment(42, AGENT, "Please unplug it.", created_at="2024-03-01T09:06:00Z")
    zd.add_comment(42, REQUESTER, "Done, still smoking.", created_at="2024-03-01T09:10:00Z")


# -- fetch_ticket -------------------------------------------------------------------------


def test_fetch_ticket_with_comments_and_requester(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    _seed_conversation(zd)
    ticket = gateway.fetch_ticket(42)

    assert ticket.id == 42
    assert ticket.subject == "Printer on fire"
    assert ticket.status == "open"
    assert ticket.requester_id == REQUESTER
    assert ticket.requester_name == "Ada Lovelace"
    assert ticket.created_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert ticket.url == f"{zd.url}/agent/tickets/42"
    assert [(c.author_id, c.body, c.public, c.author_is_requester) for c in ticket.comments] == [
        (REQUESTER, "My printer is on fire.", True, True),
        (AGENT, "Escalating to hardware.", False, False),
        (AGENT, "Please unplug it.", True, False),
        (REQUESTER, "Done, still smoking.", True, True),
    ]
    assert ticket.comments[1].created_at == datetime(2024, 3, 1, 9, 5, tzinfo=UTC)
    assert ticket.requester_locale == "en-US"  # Zendesk's user record: the tie-breaker for short texts
    assert ticket.latest_customer_comment is not None
    assert ticket.latest_customer_comment.body == "Done, still smoking."

    paths = [(r.method, r.path) for r in zd.requests]
    assert paths == [
        ("GET", "/api/v2/tickets/42.json"),
        ("GET", "/api/v2/tickets/42/comments.json"),
        ("GET", "/api/v2/users/show_many.json"),  # the requester and every author, in one request
    ]
    expected_auth = "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
    assert all(r.headers["Authorization"] == expected_auth for r in zd.requests)


def test_each_author_s_side_and_name_come_with_the_ticket(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    """A CC'd colleague writes on the customer's side (their follow-up is the message drafts answer),
    an author Zendesk no longer knows is "unknown", and every author's name is known for redaction."""
    colleague, deleted = 9, 999
    zd.add_user(colleague, "Lin Wei", "lin@example.com")
    _seed_conversation(zd)
    zd.add_comment(42, deleted, "Old system message.", created_at="2024-03-01T09:11:00Z")
    zd.add_comment(42, colleague, "Same here on the 2nd floor.", created_at="2024-03-01T09:12:00Z")
    ticket = gateway.fetch_ticket(42)
    sides = [(c.author_id, c.author_role, c.by_customer) for c in ticket.comments if c.public]
    assert sides == [
        (REQUESTER, "end-user", True),
        (AGENT, "agent", False),
        (REQUESTER, "end-user", True),
        (deleted, "unknown", False),
        (colleague, "end-user", True),
    ]
    assert ticket.latest_customer_comment is not None
    assert ticket.latest_customer_comment.body == "Same here on the 2nd floor."
    assert ticket.author_names == ("Ada Lovelace", "Grace Hopper", "Lin Wei")
    assert len(zd.requests_to("GET", "/api/v2/users/show_many.json")) == 1


def test_repeated_fetches_see_fresh_data(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    """zenpy caches tickets (30 s) and users (for good) unless told not to."""
    _seed_conversation(zd)
    assert len(gateway.fetch_ticket(42).comments) == 4
    zd.add_comment(42, REQUESTER, "Hello?")
    zd.add_user(REQUESTER, "Ada King", "ada@example.com")
    again = gateway.fetch_ticket(42)
    assert len(again.comments) == 5
    assert again.requester_name == "Ada King"
    assert len(zd.requests_to("GET", "/api/v2/tickets/42.json")) == 2


def test_long_conversations_are_read_across_comment_pages(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    zd.add_ticket(43, "Chatty", REQUESTER)
    for n in range(150):
        zd.add_comment(43, REQUESTER if n % 2 else AGENT, f"message {n}", created_at="2024-03-01T09:00:00Z")
    ticket = gateway.fetch_ticket(43)
    assert [c.body for c in ticket.comments] == [f"message {n}" for n in range(150)]
    assert len(zd.requests_to("GET", "/api/v2/tickets/43/comments.json")) == 2


def test_missing_ticket_raises_ticket_not_found(gateway: ZendeskGateway) -> None:
    with pytest.raises(TicketNotFound, match="not found"):
        gateway.fetch_ticket(404)


def test_missing_requester_leaves_the_name_empty(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    zd.add_ticket(44, "Orphan", requester_id=999, comments=[(999, "anyone?", True)])
    ticket = gateway.fetch_ticket(44)
    assert ticket.requester_name == ""
    assert ticket.requester_first_name == "customer"


def test_wrong_token_says_what_to_check(sleeps: list[float]) -> None:
    with FakeZendesk(credentials=(EMAIL, "the-real-token")) as fake:
        fake.add_user(REQUESTER, "Ada", "ada@example.com")
        fake.add_ticket(1, "x", REQUESTER)
        bad = ZendeskGateway.from_settings(fake.url, EMAIL, "a-wrong-token", sleep=sleeps.append)
        with pytest.raises(ZendeskUnavailable, match=r"401.*ZENDESK_API_TOKEN"):
            bad.fetch_ticket(1)
        good = ZendeskGateway.from_settings(fake.url, EMAIL, "the-real-token", sleep=sleeps.append)
        assert good.fetch_ticket(1).requester_name == "Ada"
    assert sleeps == []


def test_api_user_names_who_the_credentials_sign_in_as(sleeps: list[float]) -> None:
    with FakeZendesk(credentials=(EMAIL, TOKEN)) as fake:
        fake.add_user(DEFAULT_AGENT_ID, "Support Bot", EMAIL, role="agent")
        user = ZendeskGateway.from_settings(fake.url, EMAIL, TOKEN, sleep=sleeps.append).api_user()
        assert (user.id, user.email, user.role) == (DEFAULT_AGENT_ID, EMAIL, "agent")
        bad = ZendeskGateway.from_settings(fake.url, EMAIL, "a-wrong-token", sleep=sleeps.append)
        with pytest.raises(ZendeskAccessDenied, match=r"401.*ZENDESK_API_TOKEN"):
            bad.api_user()
        assert [r.path for r in fake.requests] == ["/api/v2/users/me.json"] * 2
    assert sleeps == []


def test_unreachable_zendesk_raises_unavailable() -> None:
    fake = FakeZendesk()
    url = fake.url
    fake.close()  # nothing listens on that port any more
    gateway = ZendeskGateway.from_settings(url, EMAIL, TOKEN, timeout=2, sleep=lambda _: None)
    with pytest.raises(ZendeskUnavailable, match="could not reach"):
        gateway.fetch_ticket(1)


# -- add_comment (an internal note) --------------------------------------------------------------------


def test_add_comment_as_an_internal_note(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    _seed_conversation(zd)
    gateway.add_comment(42, "Draft B, approved by Grace:\nPlease unplug it & call us.", public=False)

    puts = zd.requests_to("PUT", "/api/v2/tickets/42.json")
    assert len(puts) == 1
    # zenpy puts the ticket id in the body too; Zendesk accepts it. Nothing else is sent.
    assert puts[0].json == {
        "ticket": {
            "id": 42,
            "comment": {"body": "Draft B, approved by Grace:\nPlease unplug it & call us.", "public": False},
        }
    }
    note = zd.comments(42)[-1]
    assert note["public"] is False
    assert note["author_id"] == DEFAULT_AGENT_ID
    assert gateway.fetch_ticket(42).comments[-1].public is False


def test_add_comment_to_a_missing_ticket(gateway: ZendeskGateway) -> None:
    with pytest.raises(TicketNotFound):
        gateway.add_comment(404, "note", public=False)


# -- rate limits and server errors ----------------------------------------------------------


def test_429_with_retry_after_is_waited_out(
    zd: FakeZendesk, gateway: ZendeskGateway, sleeps: list[float]
) -> None:
    _seed_conversation(zd)
    zd.fail_next("/api/v2/tickets/42.json", 429, {"Retry-After": "7"})
    assert gateway.fetch_ticket(42).id == 42
    assert sleeps == [7.0]
    assert len(zd.requests_to("GET", "/api/v2/tickets/42.json")) == 2


def test_429_without_retry_after_waits_the_fallback(
    zd: FakeZendesk, gateway: ZendeskGateway, sleeps: list[float]
) -> None:
    _seed_conversation(zd)
    zd.fail_next("/api/v2/tickets/42/comments.json", 429)
    assert len(gateway.fetch_ticket(42).comments) == 4
    assert sleeps == [60.0]


def test_retry_after_is_capped(zd: FakeZendesk, sleeps: list[float]) -> None:
    _seed_conversation(zd)
    policy = RetryPolicy(max_wait=120)
    gateway = ZendeskGateway.from_settings(zd.url, EMAIL, TOKEN, retry=policy, sleep=sleeps.append)
    zd.fail_next("/api/v2/users/", 429, {"Retry-After": "3600"})
    gateway.fetch_ticket(42)
    assert sleeps == [120.0]


def test_server_errors_on_reads_are_retried_with_backoff(
    zd: FakeZendesk, gateway: ZendeskGateway, sleeps: list[float]
) -> None:
    _seed_conversation(zd)
    zd.fail_next("/api/v2/tickets/42.json", 503, times=2)
    zd.fail_next("/api/v2/users/", 500)
    assert gateway.fetch_ticket(42).requester_name == "Ada Lovelace"
    assert sleeps == [2.0, 4.0, 2.0]


def test_429_on_a_note_is_retried_and_the_note_added_once(
    zd: FakeZendesk, gateway: ZendeskGateway, sleeps: list[float]
) -> None:
    _seed_conversation(zd)
    zd.fail_next("/api/v2/tickets/42.json", 429, {"Retry-After": "3"})
    gateway.add_comment(42, "note", public=False)
    assert sleeps == [3.0]
    assert [c["body"] for c in zd.comments(42)].count("note") == 1


def test_server_error_on_a_note_is_not_retried(
    zd: FakeZendesk, gateway: ZendeskGateway, sleeps: list[float]
) -> None:
    """The note may have been saved before the error: a retry could post it twice."""
    _seed_conversation(zd)
    zd.fail_next("/api/v2/tickets/42.json", 502)
    with pytest.raises(ZendeskUnavailable, match=r"502.*status\.zendesk\.com"):
        gateway.add_comment(42, "note", public=False)
    assert sleeps == []
    assert len(zd.requests_to("PUT", "/api/v2/tickets/42.json")) == 1


def test_retries_are_bounded(zd: FakeZendesk, sleeps: list[float]) -> None:
    _seed_conversation(zd)
    gateway = ZendeskGateway.from_settings(
        zd.url, EMAIL, TOKEN, retry=RetryPolicy(max_retries=2), sleep=sleeps.append
    )
    zd.fail_next("/api/v2/tickets/42.json", 429, {"Retry-After": "1"}, times=10)
    with pytest.raises(ZendeskUnavailable, match=r"429.*rate-limiting"):
        gateway.fetch_ticket(42)
    assert sleeps == [1.0, 1.0]
    assert len(zd.requests_to("GET", "/api/v2/tickets/42.json")) == 3


# -- incremental export ---------------------------------------------------------------------


def _recorded_page() -> dict[str, Any]:
    path = recorded_fixture("zendesk/incremental_tickets_cursor_page1.json")
    recording = json.loads(path.read_text("utf-8"))
    assert recording["request"]["path"].startswith(INCREMENTAL)
    return recording["body"]


def _last_page(first: dict[str, Any]) -> dict[str, Any]:
    """A small hand-made page: what Zendesk answers once the export has caught up."""
    ticket = copy.deepcopy(first["tickets"][0])
    ticket.update(
        id=5001,
        url=ticket["url"].replace("/28.json", "/5001.json"),
        status="open",
        subject="Second page",
        created_at="2023-09-19T08:00:00Z",
        updated_at="2023-09-19T08:30:00Z",
        generated_timestamp=1695112200,
    )
    return {
        "tickets": [ticket],
        "after_cursor": "MTY5NTExMjIwMC4wfHw1MDAxfA==",
        "before_cursor": first["after_cursor"],
        "end_of_stream": True,
    }


def test_incremental_export_over_a_recorded_page(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    first = _recorded_page()
    last = _last_page(first)
    zd.set_incremental_pages([first, last])

    pages = list(gateway.incremental_changes(None, start_time=1695000000))

    assert len(pages) == 2
    changes, cursor, end = pages[0]
    assert all(isinstance(c, TicketChange) for c in changes)
    assert len(changes) == 1000
    assert Counter(c.status for c in changes) == {"deleted": 515, "new": 485}
    assert cursor == first["after_cursor"] == "MTY5NTA2MjcyNC4wfHwxNTcxfA=="
    assert end is False
    assert changes[0] == TicketChange(
        id=28,
        status="new",
        created_at=datetime(2023, 9, 18, 15, 57, 42, tzinfo=UTC),
        updated_at=datetime(2023, 9, 18, 15, 57, 42, tzinfo=UTC),
    )

    changes, cursor, end = pages[1]
    assert [(c.id, c.status) for c in changes] == [(5001, "open")]
    assert cursor == last["after_cursor"]
    assert end is True

    queries = [r.query for r in zd.requests_to("GET", INCREMENTAL)]
    assert queries == [{"start_time": "1695000000"}, {"cursor": first["after_cursor"]}]


def test_incremental_export_resumes_from_a_saved_cursor(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    first = _recorded_page()
    zd.set_incremental_pages([first, _last_page(first)])
    pages = list(gateway.incremental_changes(first["after_cursor"], start_time=1695000000))
    assert [(len(changes), end) for changes, _, end in pages] == [(1, True)]
    assert [r.query for r in zd.requests_to("GET", INCREMENTAL)] == [{"cursor": first["after_cursor"]}]


def test_incremental_export_fetches_a_page_only_when_asked(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    """The caller persists each page's cursor before the next page is requested."""
    first = _recorded_page()
    zd.set_incremental_pages([first, _last_page(first)])
    pages = gateway.incremental_changes(None, start_time=0)
    next(pages)
    assert len(zd.requests_to("GET", INCREMENTAL)) == 1
    pages.close()


def test_caught_up_export_keeps_the_cursor(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    zd.set_incremental_pages(
        [
            {"tickets": [], "after_cursor": "c2F2ZWQ=", "before_cursor": None, "end_of_stream": False},
            {"tickets": [], "after_cursor": None, "before_cursor": None, "end_of_stream": True},
        ]
    )
    assert list(gateway.incremental_changes("c2F2ZWQ=", start_time=0)) == [([], "c2F2ZWQ=", True)]


def test_incremental_export_waits_out_its_rate_limit(
    zd: FakeZendesk, gateway: ZendeskGateway, sleeps: list[float]
) -> None:
    first = _recorded_page()
    zd.set_incremental_pages([first, _last_page(first)])
    zd.fail_next(INCREMENTAL, 429, {"Retry-After": "42"})
    pages = list(gateway.incremental_changes(None, start_time=0))
    assert [end for _, _, end in pages] == [False, True]
    assert sleeps == [42.0]


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["acme.zendesk.com", "ftp://acme.zendesk.com", "https://acme.zendesk.com/agent", "http://localhost:8080"],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Zendesk url"):
        ZendeskGateway.from_settings(url, EMAIL, TOKEN)


def test_missing_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="ZENDESK_API_TOKEN"):
        ZendeskGateway.from_settings("https://acme.zendesk.com", EMAIL, "")


def test_a_real_zendesk_url_is_used_as_is() -> None:
    gateway = ZendeskGateway.from_settings("https://acme.zendesk.com/", EMAIL, TOKEN)
    assert gateway.base_url == "https://acme.zendesk.com"
    assert gateway.ticket_url(5) == "https://acme.zendesk.com/agent/tickets/5"
    assert gateway.client.tickets.base_url == "acme.zendesk.com"


def test_a_429_that_outlasts_the_retries_carries_zendesks_retry_after(
    zd: FakeZendesk, sleeps: list[float]
) -> None:
    _seed_conversation(zd)
    gateway = ZendeskGateway.from_settings(
        zd.url, EMAIL, TOKEN, retry=RetryPolicy(max_retries=1), sleep=sleeps.append
    )
    zd.fail_next("/api/v2/tickets/42.json", 429, {"Retry-After": "90"}, times=10)
    with pytest.raises(ZendeskUnavailable) as info:
        gateway.fetch_ticket(42)
    assert sleeps == [90.0] and info.value.retry_after == 90.0


# -- sending drafts: comments as an agent, public replies, agents by e-mail, Help Center changes ----


def test_add_comment_as_an_agent_publicly_returns_its_id(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    _seed_conversation(zd)
    comment_id = gateway.add_comment(42, "Please unplug it.", public=True, author_id=501)
    [put] = zd.requests_to("PUT", "/api/v2/tickets/42.json")
    assert put.json["ticket"]["comment"] == {"body": "Please unplug it.", "public": True, "author_id": 501}
    added = zd.comments(42)[-1]
    assert (added["id"], added["author_id"], added["public"]) == (comment_id, 501, True)


def test_a_closed_ticket_refuses_a_comment(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    _seed_conversation(zd)
    zd.set_status(42, "closed")
    with pytest.raises(ZendeskUnavailable, match="HTTP 422"):
        gateway.add_comment(42, "too late", public=False)


def test_agent_by_email_finds_only_active_agents(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    zd.add_user(501, "Grace Hopper", "grace@example.com", role="agent")
    zd.add_user(502, "Ada Admin", "ada@example.com", role="admin")
    zd.add_user(503, "Carl Customer", "carl@example.com")
    assert gateway.agent_by_email("Grace@Example.com") == Agent(501, "Grace Hopper", "grace@example.com")
    assert gateway.agent_by_email("ada@example.com") == Agent(502, "Ada Admin", "ada@example.com")
    assert gateway.agent_by_email("carl@example.com") is None  # an end user cannot author a reply
    assert gateway.agent_by_email("nobody@example.com") is None and gateway.agent_by_email(" ") is None
    [search, *_] = zd.requests_to("GET", "/api/v2/users/search.json")
    assert search.query == {"query": "email:grace@example.com"}


def test_fetch_ticket_carries_the_requesters_email(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    _seed_conversation(zd)
    zd.add_user(REQUESTER, "Maria Schmidt", "maria@example.com")
    ticket = gateway.fetch_ticket(42)
    assert (ticket.requester_name, ticket.requester_email) == ("Maria Schmidt", "maria@example.com")


def test_help_center_changes_since_a_time(zd: FakeZendesk, gateway: ZendeskGateway) -> None:
    zd.add_article(1, "Old", "<p>old</p>", updated_at="2024-01-01T00:00:00Z")
    zd.add_article(2, "New", "<p>new</p>", updated_at="2025-06-01T00:00:00Z")
    zd.add_article(2, "Neu", "<p>neu</p>", locale="de", updated_at="2025-06-02T00:00:00Z")
    since = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    changed = list(gateway.help_center_changes(since))
    assert [(a.id, a.locale, a.title) for a in changed] == [(2, "en-us", "New"), (2, "de", "Neu")]
    assert changed[0].url.endswith("/hc/en-us/articles/2-New")


def test_staff_names_are_the_people_who_sign_in_every_page_of_them() -> None:
    with FakeZendesk() as zendesk:
        for n in range(120):  # more than one page of users
            zendesk.add_user(1000 + n, f"Agent {n:03d} Person", f"a{n}@acme.example", role="agent")
        zendesk.add_user(5, "Marta Kowalski", "marta@acme.example", role="admin")
        zendesk.add_user(6, "Shopify Sync", "shopify@acme.example", role="admin", signs_in=False)
        zendesk.add_user(7, "Aiko Tanaka", "aiko@example.com")  # a customer
        gateway = ZendeskGateway.from_settings(zendesk.url, "agent@example.com", "token")
        names = gateway.staff_names()
    assert len(names) == 121 and "Marta Kowalski" in names and "Agent 119 Person" in names
    assert "Shopify Sync" not in names and "Aiko Tanaka" not in names  # a product's name stays


def test_the_requester_locale_is_read_from_their_user_record(
    zd: FakeZendesk, gateway: ZendeskGateway
) -> None:
    zd.add_user(21, "Jonas Weber", "jonas@example.com", locale="de")
    zd.add_ticket(45, "Rechnung", 21, status="open", created_at="2024-03-01T09:00:00Z")
    zd.add_comment(45, 21, "Danke!", created_at="2024-03-01T09:00:00Z")
    assert gateway.fetch_ticket(45).requester_locale == "de"
