"""Help-centre sources: the Help Center's articles, kept in step with Zendesk by ``updated_at`` and
searched with `integrations.help_center_index` (bm25s), answering "which articles fit this ticket"
(links under the ticket's parent message) and "which passages go into a grounded model's prompt".

The articles are kept as plain text in one JSON file (``[grounding] path``) with the time of the
newest change seen, so a refresh asks Zendesk only for what changed since (the incremental article
export) and a restart does not read the Help Center again. The index itself is rebuilt in memory
from that file: a few thousand articles take well under a second.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.domain import Ticket
from core.files import replace_atomically
from core.pii import PublicContacts
from core.ports import GatewayError, HelpCenterSource
from integrations.help_center_index import Article, ArticleIndex, Passage, html_to_text

log = logging.getLogger(__name__)


class HelpCenterIndex:
    """The articles of ``locales`` and their BM25 index. Thread-safe: the refresh job replaces the
    index while the worker searches it."""

    def __init__(self, path: Path, locales: Sequence[str]) -> None:
        self.path = path
        self.locales = tuple(locale.lower() for locale in locales)
        self._lock = threading.Lock()
        self._articles: dict[str, Article] = {}
        self._since = 0  # Unix time of the newest change seen: the next refresh starts there
        self._index = ArticleIndex()
        self._public = PublicContacts()
        self._load()

    def __len__(self) -> int:
        return len(self._articles)

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning(
                "could not read the Help Center index %s (%s): it is read again from Zendesk", self.path, exc
            )
            return
        self._since = int(data.get("since", 0))
        self._articles = {key: Article(**value) for key, value in (data.get("articles") or {}).items()}
        self._rebuild()

    def refresh(self, source: HelpCenterSource) -> int:
        """Reads the articles changed since the last refresh; how many were added, changed or removed."""
        changed = 0
        since = self._since
        articles = dict(self._articles)
        for raw in source.help_center_changes(self._since):
            since = max(since, _unix(raw.updated_at))
            locale = (raw.locale or "").lower()
            if locale not in self.locales:
                continue
            key = f"{locale}:{raw.id}"
            if raw.draft:  # unpublished: no longer a source
                changed += articles.pop(key, None) is not None
                continue
            articles[key] = Article(
                int(raw.id), locale, raw.title, raw.url, html_to_text(raw.body), raw.updated_at
            )
            changed += 1
        with self._lock:
            self._articles, self._since = articles, since
        self._save()
        if changed:
            self._rebuild()
        return changed

    def _save(self) -> None:
        data = {"since": self._since, "articles": {key: asdict(a) for key, a in self._articles.items()}}
        payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(self.path, lambda handle: handle.write(payload))

    def _rebuild(self) -> None:
        articles = list(self._articles.values())
        self._index.replace(articles)
        self._public = PublicContacts.found_in(f"{a.title}\n{a.text}" for a in articles)

    def public_contacts(self) -> PublicContacts:
        """The e-mail addresses and phone numbers the indexed articles publish."""
        return self._public

    def search(self, query: str, k: int) -> list[Passage]:
        return self._index.search(query, k)

    def top_articles(self, ticket: Ticket, k: int) -> list[Article]:
        return self._index.top_articles(ticket, k)

    def prompt_passages(self, ticket: Ticket, count_tokens: Callable[[str], int], budget: int) -> list[str]:
        return self._index.prompt_passages(ticket, count_tokens, budget)


def _unix(moment: Any) -> int:
    try:
        return int(datetime.fromisoformat(str(moment).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


class HelpCenterSources:
    """The worker's `SourceFinder`: links for every ticket, passages for the grounded models only."""

    def __init__(
        self, index: HelpCenterIndex, grounded_models: Iterable[str], articles_shown: int, prompt_tokens: int
    ) -> None:
        self.index = index
        self.grounded_models = frozenset(grounded_models)
        self.articles_shown = articles_shown
        self.prompt_tokens = prompt_tokens

    def links(self, ticket: Ticket, language: str | None = None) -> list[tuple[str, str]]:
        if self.articles_shown <= 0:  # the links are off: the index is there for grounded models only
            return []
        return [(a.title, a.url) for a in self.index.top_articles(ticket, self.articles_shown)]

    def passages(
        self, model: str, ticket: Ticket, count_tokens: Callable[[str], int], language: str | None = None
    ) -> list[str]:
        if model not in self.grounded_models:
            return []
        return self.index.prompt_passages(ticket, count_tokens, self.prompt_tokens)

    def public_contacts(self) -> PublicContacts:
        return self.index.public_contacts()


@dataclass(frozen=True)
class HelpCenterLinks:
    """Whether the links under each ticket are on, and why (for the log and `draftdesk doctor`)."""

    on: bool
    why: str
    checked: bool = True  # False: the Help Center could not be read, so the "off" is a guess


def help_center_links(
    enabled: bool | None, locales: Sequence[str], article_count: Callable[[str], int | None]
) -> HelpCenterLinks:
    """``[grounding] enabled`` decides when set; unset, the Help Center does: on when it has articles
    in one of ``locales`` (``article_count``: one request per locale, until one has), off when
    Zendesk answers 404 (None: no Help Center) or it has none."""
    if enabled is not None:
        return HelpCenterLinks(enabled, f"[grounding] enabled = {'true' if enabled else 'false'}")
    unset = "([grounding] enabled unset)"
    decide = "([grounding] enabled unset: restart once it has articles, or set enabled = true)"
    absent: list[str] = []
    for locale in locales:
        try:
            count = article_count(locale)
        except GatewayError as exc:
            why = f"could not read the Help Center ({exc}) {unset}: set enabled = true or false to decide"
            return HelpCenterLinks(False, why, checked=False)
        if count:
            return HelpCenterLinks(True, f"the Help Center has {count} article(s) in {locale} {unset}")
        if count is None:
            absent.append(locale)
    if len(absent) == len(locales):
        return HelpCenterLinks(
            False, f"Zendesk has no Help Center (404 for its {', '.join(absent)} articles) {decide}"
        )
    return HelpCenterLinks(False, f"the Help Center has no articles in {', '.join(locales)} {decide}")
