"""The bundled sample data set (fictional "Acme Cloud Backup") and a loopback Zendesk serving it.

The tests, the README walk-through (``draftdesk finetune export --sample``) and the demo export
from :func:`sample_zendesk`: the loopback stand-in seeded with the sample, reached through zenpy
over HTTP like a real account.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from integrations.standins.zendesk_server import FakeZendesk

SAMPLE_EMAIL = "sample@acme-backup.example"
SAMPLE_TOKEN = "sample-token"
SAMPLE_PRODUCT = "Acme Cloud Backup"
SAMPLE_LOCALES = ("en-us", "de")


@dataclass(frozen=True)
class SampleData:
    articles: list[dict[str, Any]]
    tickets: list[dict[str, Any]]
    comments: dict[int, list[dict[str, Any]]]
    users: list[dict[str, Any]]


def _read(name: str) -> Any:
    return json.loads(resources.files("finetune").joinpath(f"sample_data/{name}.json").read_text("utf-8"))


def load_sample() -> SampleData:
    """The bundled sample, in Zendesk's response shapes."""
    return SampleData(
        articles=_read("help_center_articles")["articles"],
        tickets=_read("tickets")["tickets"],
        comments={int(k): v["comments"] for k, v in _read("ticket_comments").items()},
        users=_read("users")["users"],
    )


def seed(zendesk: FakeZendesk, sample: SampleData, page_size: int = 20) -> None:
    """Put the sample into the stand-in: users, articles, tickets with comments, export pages."""
    seed_users_and_articles(zendesk, sample)
    for ticket in sample.tickets:
        zendesk.add_ticket(
            ticket["id"],
            ticket["subject"],
            ticket["requester_id"],
            status=ticket["status"],
            created_at=ticket["created_at"],
        )
        for comment in sample.comments.get(ticket["id"], []):
            zendesk.add_comment(
                ticket["id"], comment["author_id"], comment["body"], comment["public"], comment["created_at"]
            )
    zendesk.set_incremental_pages(export_pages(zendesk, [t["id"] for t in sample.tickets], page_size))


def seed_users_and_articles(zendesk: FakeZendesk, sample: SampleData) -> None:
    """The sample's users and Help Center (its unpublished articles as drafts) in the stand-in."""
    for user in sample.users:
        zendesk.add_user(user["id"], user["name"], user["email"], role=user.get("role", "end-user"))
    for article in sample.articles:
        zendesk.add_article(
            article["id"],
            article["title"],
            article["body"],
            locale=article["locale"],
            updated_at=article["updated_at"],
            section_id=article.get("section_id") or 1,
            draft=bool(article.get("draft")),
        )


def export_pages(zendesk: FakeZendesk, ticket_ids: list[int], page_size: int) -> list[dict[str, Any]]:
    """Cursor-export pages (``tickets``, ``after_cursor``, ``end_of_stream``) for the stand-in."""
    rows = [zendesk.ticket(ticket_id) for ticket_id in ticket_ids]
    rows.sort(key=lambda t: (t["updated_at"], t["id"]))
    pages = []
    for start in range(0, len(rows), page_size):
        chunk = rows[start : start + page_size]
        last = start + page_size >= len(rows)
        pages.append(
            {
                "tickets": chunk,
                "after_cursor": f"sample-cursor-{start // page_size + 1}",
                "before_cursor": None,
                "end_of_stream": last,
            }
        )
    return pages


@contextlib.contextmanager
def sample_zendesk(page_size: int = 20) -> Iterator[FakeZendesk]:
    """A loopback Zendesk serving the bundled sample; closed on exit."""
    with FakeZendesk(credentials=(SAMPLE_EMAIL, SAMPLE_TOKEN)) as zendesk:
        seed(zendesk, load_sample(), page_size)
        yield zendesk
