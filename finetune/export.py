"""`draftdesk finetune export`: Help Center articles and solved/closed tickets to a folder.

Layout of the export folder (it holds personal data: keep it where the tickets are allowed to be)::

    articles/{locale}/{id}.html     the article body as Zendesk stores it
    articles/{locale}/{id}.txt      the same as plain text (title first)
    articles/metadata.json          [{id, title, url, locale, updated_at, section_id}]
    tickets/{id}.json               {"ticket": {...}, "comments": [public comments with "role"],
                                    "language": the customer's, ISO 639-1 (finetune.languages)}
    internal_notes/{id}.json        the ticket's internal notes: kept apart, never used as answers
    users.jsonl                     {id, name, email, role, locale} of requesters, agents, authors
    state.json                      where to resume: the export cursor, finished locales, counts

Tickets come from the cursor-based incremental export, paced to ``requests_per_minute`` (Zendesk
allows 10 a minute); 429s are waited out by the gateway's session. The cursor is saved after each
page is fully written, so a re-run continues after the last finished page (and, once caught up,
picks up tickets solved since). A ticket that was deleted or re-opened since an earlier run is
removed from the export.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.html_text import html_to_text
from finetune.config import ExportConfig, parse_start_time
from finetune.files import read_json, read_jsonl, write_json, write_jsonl, write_text
from finetune.languages import ticket_language
from integrations.language_config import LanguageSettings
from integrations.language_detector import TicketLanguages
from integrations.zendesk import ExportedComment, ExportedTicket, ZendeskGateway, ZendeskUser, author_role

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass
class ExportState:
    """Progress saved after every page: a re-run resumes from here."""

    start_time: int = 0
    cursor: str | None = None
    caught_up: bool = False
    locales_done: list[str] = field(default_factory=list)
    pages: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ExportState:
        if not path.is_file():
            return cls()
        data = read_json(path)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))


class Exporter:
    """Runs one export into ``out_dir``; ``sleep``/``clock`` are injectable for tests."""

    def __init__(
        self,
        gateway: ZendeskGateway,
        out_dir: Path,
        config: ExportConfig,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress: bool = True,
        languages: TicketLanguages | None = None,
    ) -> None:
        self.gateway = gateway
        self.languages = languages or TicketLanguages(LanguageSettings())
        self.out = Path(out_dir)
        self.config = config
        self.sleep = sleep
        self.clock = clock
        self.progress = progress
        self.state_path = self.out / STATE_FILE
        self.users: dict[int, ZendeskUser] = {}
        self._pending_users: set[int] = set()

    # -- entry point ------------------------------------------------------------------------

    def run(self) -> ExportState:
        self.out.mkdir(parents=True, exist_ok=True)
        state = ExportState.load(self.state_path)
        start_time = parse_start_time(self.config.start_time) or 0
        if state.cursor and state.start_time != start_time:
            log.warning("start_time changed since the last export: starting the ticket export over")
            state = ExportState(locales_done=state.locales_done, counts=state.counts)
        state.start_time = start_time
        self._load_users()
        for locale in self.config.locales:
            if locale in state.locales_done:
                log.info(
                    "articles (%s): already exported, skipping (delete %s to redo)", locale, self.state_path
                )
                continue
            count = self._export_articles(locale)
            state.locales_done.append(locale)
            state.counts[f"articles_{locale}"] = count
            state.save(self.state_path)
        self._export_tickets(state)
        return state

    # -- articles ---------------------------------------------------------------------------

    def _export_articles(self, locale: str) -> int:
        folder = self.out / "articles" / locale
        records = []
        bar = tqdm(desc=f"articles {locale}", unit=" articles", disable=not self.progress)
        for article in self.gateway.help_center_articles(locale):
            bar.update()
            if article.draft and not self.config.include_draft_articles:
                continue
            write_text(folder / f"{article.id}.html", article.body)
            write_text(folder / f"{article.id}.txt", f"{article.title}\n\n{html_to_text(article.body)}\n")
            records.append(
                {
                    "id": article.id,
                    "title": article.title,
                    "url": article.url,
                    "locale": locale,
                    "updated_at": article.updated_at,
                    "section_id": article.section_id,
                }
            )
        bar.close()
        metadata_path = self.out / "articles" / "metadata.json"
        existing = read_json(metadata_path) if metadata_path.is_file() else []
        merged = [r for r in existing if r["locale"] != locale] + records
        write_json(metadata_path, sorted(merged, key=lambda r: (r["locale"], r["id"])))
        log.info("articles (%s): %d exported", locale, len(records))
        return len(records)

    # -- tickets ----------------------------------------------------------------------------

    def _export_tickets(self, state: ExportState) -> None:
        interval = 60.0 / self.config.requests_per_minute if self.config.requests_per_minute > 0 else 0.0
        counts = Counter(state.counts)
        bar = tqdm(desc="ticket export", unit=" tickets", disable=not self.progress)
        pages = self.gateway.ticket_export_pages(state.cursor, state.start_time)
        while True:
            requested = self.clock()
            try:
                tickets, cursor, end_of_stream = next(pages)
            except StopIteration:
                break
            fetched = []
            for ticket in tickets:
                counts["tickets_seen"] += 1
                if self._keep(ticket, counts):
                    comments = self.gateway.ticket_comments(ticket.id)
                    self._pending_users.update({ticket.requester_id, *(c.author_id for c in comments)})
                    fetched.append((ticket, comments))
                bar.update()
            self._fetch_missing_users()  # one users request per page: roles need them
            for ticket, comments in fetched:
                self._write_ticket(ticket, comments, counts)
            state.cursor = cursor
            state.caught_up = end_of_stream
            state.pages += 1
            state.counts = dict(counts)
            state.save(self.state_path)  # only now: the page is on disk
            bar.set_postfix(exported=counts["tickets_exported"], pages=state.pages)
            if end_of_stream:
                break
            wait = interval - (self.clock() - requested)
            if wait > 0:
                self.sleep(wait)  # Zendesk allows 10 incremental-export requests a minute
        bar.close()
        log.info(
            "tickets: %d exported, %d skipped (status), %d removed; %d public comments, %d internal notes",
            counts["tickets_exported"],
            counts["tickets_skipped_status"],
            counts["tickets_removed"],
            counts["comments_public"],
            counts["internal_notes"],
        )

    def _paths(self, ticket_id: int) -> tuple[Path, Path]:
        return self.out / "tickets" / f"{ticket_id}.json", self.out / "internal_notes" / f"{ticket_id}.json"

    def _keep(self, ticket: ExportedTicket, counts: Counter[str]) -> bool:
        """Whether the ticket's status is exported; removes an earlier export of one that is not."""
        if ticket.status in self.config.statuses:
            return True
        counts["tickets_skipped_status"] += 1
        ticket_path, notes_path = self._paths(ticket.id)
        if ticket_path.exists():  # deleted or re-opened since an earlier run: it must go
            ticket_path.unlink()
            notes_path.unlink(missing_ok=True)
            counts["tickets_removed"] += 1
        return False

    def _write_ticket(
        self, ticket: ExportedTicket, comments: list[ExportedComment], counts: Counter[str]
    ) -> None:
        ticket_path, notes_path = self._paths(ticket.id)
        public = [self._comment_record(c, ticket) for c in comments if c.public]
        notes = [self._comment_record(c, ticket) for c in comments if not c.public]
        record: dict[str, Any] = {"ticket": asdict(ticket), "comments": public}
        locales = {user_id: user.locale for user_id, user in self.users.items() if user.locale}
        record["language"] = ticket_language(record, locales, self.languages)
        write_json(ticket_path, record)
        if notes:
            write_json(notes_path, {"ticket_id": ticket.id, "notes": notes})
        else:
            notes_path.unlink(missing_ok=True)
        counts["tickets_exported"] += 1
        counts["comments_public"] += len(public)
        counts["internal_notes"] += len(notes)

    def _comment_record(self, comment: ExportedComment, ticket: ExportedTicket) -> dict[str, Any]:
        return {**asdict(comment), "role": self._role(comment.author_id, ticket)}

    def _role(self, author_id: int, ticket: ExportedTicket) -> str:
        """ "requester", "agent" (agents and admins), "end-user" (someone else), or "unknown"."""
        if author_id == ticket.requester_id:
            return "requester"
        return author_role(self.users.get(author_id))

    # -- users ------------------------------------------------------------------------------

    def _load_users(self) -> None:
        path = self.out / "users.jsonl"
        if path.is_file():
            self.users = {int(row["id"]): ZendeskUser(**row) for row in read_jsonl(path)}

    def _fetch_missing_users(self) -> None:
        missing = {i for i in self._pending_users if i and i not in self.users}
        self._pending_users = set()
        if not missing:
            return
        for user in self.gateway.users_by_ids(missing):
            self.users[user.id] = user
        write_jsonl(self.out / "users.jsonl", (asdict(u) for _, u in sorted(self.users.items())))


def export_zendesk(
    gateway: ZendeskGateway, out_dir: Path, config: ExportConfig, progress: bool = True, **kwargs: Any
) -> ExportState:
    """Export articles, tickets and users into ``out_dir``; resumes from ``out_dir/state.json``."""
    return Exporter(gateway, out_dir, config, progress=progress, **kwargs).run()
