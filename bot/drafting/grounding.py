"""Help-centre sources: the Help Center's articles in each configured locale, searched with
`integrations.help_center_index` (bm25s, one index per language), answering "which articles fit this
ticket" (links under the ticket's parent message) and "which passages go into a grounded model's
prompt", both from the articles in the ticket's language.

Each locale is read from its own Help Center listing (``/help_center/{locale}/articles``): a refresh
reads them whole, so an article unpublished, archived or deleted leaves the index too. The articles
are kept as plain text in one JSON file (``[grounding] path``), so a restart does not read the Help
Center again; the indexes are rebuilt in memory from it: a few thousand articles take well under a
second.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from core.domain import Ticket
from core.files import replace_atomically
from core.languages import locale_language
from core.pii import PublicContacts
from core.ports import GatewayError, HelpCenterSource
from integrations.help_center_index import Article, ArticleIndex, Passage, html_to_text

log = logging.getLogger(__name__)


class HelpCenterIndex:
    """The articles of ``locales`` and one BM25 index per language: a ticket's links and passages
    come from its language's articles, or the first locale's (the default) when its language has
    none. Thread-safe: the refresh job replaces the indexes while the worker searches them."""

    def __init__(self, path: Path, locales: Sequence[str]) -> None:
        self.path = path
        self.locales = tuple(locale.lower() for locale in locales)
        self.default_language = locale_language(self.locales[0] if self.locales else None) or "en"
        self._lock = threading.Lock()
        self._articles: dict[str, Article] = {}
        self._indexes: dict[str, ArticleIndex] = {}
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
        self._articles = {
            key: Article(**value)
            for key, value in (data.get("articles") or {}).items()
            if key.split(":", 1)[0] in self.locales  # a locale no longer configured is no source
        }
        self._rebuild()

    def refresh(self, source: HelpCenterSource) -> int:
        """Reads each locale's articles from its own Help Center listing; how many were added,
        changed or removed. A locale whose listing fails keeps its articles until the next refresh;
        the first failure is raised once the other locales are read."""
        articles: dict[str, Article] = {}
        failure: GatewayError | None = None
        for locale in self.locales:
            try:
                listed = list(source.help_center_articles(locale))
            except GatewayError as exc:
                log.warning("could not read the Help Center articles in %s: %s", locale, exc)
                failure = failure or exc
                articles.update({k: a for k, a in self._articles.items() if k.startswith(f"{locale}:")})
                continue
            for raw in listed:
                if raw.draft:  # unpublished: no source
                    continue
                article = Article(
                    int(raw.id), locale, raw.title, raw.url, html_to_text(raw.body), str(raw.updated_at)
                )
                articles[f"{locale}:{article.id}"] = article
        before = self._articles
        changed = len(set(before) ^ set(articles)) + sum(
            1 for key, article in articles.items() if key in before and before[key] != article
        )
        with self._lock:
            self._articles = articles
        self._save()
        if changed:
            self._rebuild()
        if failure is not None:
            raise failure
        return changed

    def export(self) -> dict[str, dict[str, object]]:
        """The indexed articles as plain data (what ``adopt`` takes)."""
        with self._lock:
            return {key: asdict(article) for key, article in self._articles.items()}

    def adopt(self, articles: dict[str, dict[str, object]]) -> int:
        """Serves the articles another replica read (``export``'s form); how many changed."""
        adopted = {
            key: Article(**value)  # type: ignore[arg-type]
            for key, value in articles.items()
            if key.split(":", 1)[0] in self.locales
        }
        before = self._articles
        changed = len(set(before) ^ set(adopted)) + sum(
            1 for key, article in adopted.items() if key in before and before[key] != article
        )
        with self._lock:
            self._articles = adopted
        if changed:
            self._save()
            self._rebuild()
        return changed

    def _save(self) -> None:
        data = {"articles": {key: asdict(a) for key, a in self._articles.items()}}
        payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(self.path, lambda handle: handle.write(payload))

    def _rebuild(self) -> None:
        by_language: dict[str, list[Article]] = {}
        for article in self._articles.values():
            language = locale_language(article.locale) or self.default_language
            by_language.setdefault(language, []).append(article)
        indexes = {language: ArticleIndex(found, language) for language, found in by_language.items()}
        public = PublicContacts.found_in(f"{a.title}\n{a.text}" for a in self._articles.values())
        with self._lock:
            self._indexes, self._public = indexes, public

    def languages(self) -> list[str]:
        """The languages that have articles, sorted."""
        with self._lock:
            return sorted(self._indexes)

    def _index_for(self, language: str | None) -> ArticleIndex | None:
        """The index of ``language``'s articles; the default locale's when it has none."""
        with self._lock:
            indexes = self._indexes
        return indexes.get(language or self.default_language) or indexes.get(self.default_language)

    def public_contacts(self) -> PublicContacts:
        """The e-mail addresses and phone numbers the indexed articles publish."""
        return self._public

    def search(self, query: str, k: int, language: str | None = None) -> list[Passage]:
        index = self._index_for(language)
        return index.search(query, k) if index else []

    def top_articles(self, ticket: Ticket, k: int, language: str | None = None) -> list[Article]:
        index = self._index_for(language)
        return index.top_articles(ticket, k) if index else []

    def prompt_passages(
        self, ticket: Ticket, count_tokens: Callable[[str], int], budget: int, language: str | None = None
    ) -> list[str]:
        index = self._index_for(language)
        return index.prompt_passages(ticket, count_tokens, budget) if index else []


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
        return [(a.title, a.url) for a in self.index.top_articles(ticket, self.articles_shown, language)]

    def passages(
        self, model: str, ticket: Ticket, count_tokens: Callable[[str], int], language: str | None = None
    ) -> list[str]:
        if model not in self.grounded_models:
            return []
        return self.index.prompt_passages(ticket, count_tokens, self.prompt_tokens, language)

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
