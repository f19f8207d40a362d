"""Help-centre sources: a BM25 index of the Help Center's articles (bm25s), kept in step with
Zendesk by ``updated_at``, answering "which articles fit this ticket" (links under the ticket's
parent message) and "which passages go into a grounded model's prompt".

The articles are kept as plain text in one JSON file (``[grounding] path``) with the time of the
newest change seen, so a refresh asks Zendesk only for what changed since (the incremental article
export) and a restart does not read the Help Center again. The index itself is rebuilt in memory
from that file: a few thousand articles take well under a second.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import bm25s

from core.domain import Ticket
from core.files import replace_atomically
from core.ports import HelpCenterSource

log = logging.getLogger(__name__)

PASSAGE_WORDS = 80  # a passage: about a paragraph, so a prompt gets the part that answers
_TAGS = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</(?:p|li|h[1-6]|div|tr|pre|blockquote)>|<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True)
class Article:
    id: int
    locale: str
    title: str
    url: str
    text: str
    updated_at: str


@dataclass(frozen=True)
class Passage:
    article: Article
    text: str
    score: float


def html_to_text(body: str) -> str:
    """Article HTML as paragraphs of plain text (one per line)."""
    text = _BLOCK_END.sub("\n", body)
    text = html.unescape(_TAGS.sub(" ", text))
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def split_passages(article: Article, words: int = PASSAGE_WORDS) -> list[str]:
    """The article's paragraphs gathered into passages of about ``words`` words, title first."""
    passages: list[str] = []
    current: list[str] = []
    for paragraph in article.text.splitlines():
        current.append(paragraph)
        if sum(len(p.split()) for p in current) >= words:
            passages.append(" ".join(current))
            current = []
    if current or not passages:
        passages.append(" ".join(current))
    return [f"{article.title}: {p}".strip() for p in passages]


def ticket_query(ticket: Ticket) -> str:
    """What a ticket asks: its subject and the customer's newest message."""
    latest = ticket.latest_requester_comment
    return f"{ticket.subject}\n{latest.body if latest else ''}"


class HelpCenterIndex:
    """The articles of ``locales`` and their BM25 index. Thread-safe: the refresh job replaces the
    index while the worker searches it."""

    def __init__(self, path: Path, locales: Sequence[str]) -> None:
        self.path = path
        self.locales = tuple(locale.lower() for locale in locales)
        self._lock = threading.Lock()
        self._articles: dict[str, Article] = {}
        self._since = 0  # Unix time of the newest change seen: the next refresh starts there
        self._passages: list[tuple[Article, str]] = []
        self._retriever: bm25s.BM25 | None = None
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
        passages = [(a, p) for a in self._articles.values() for p in split_passages(a)]
        retriever = None
        if passages:
            retriever = bm25s.BM25()
            retriever.index(_tokens([p for _, p in passages]), show_progress=False)
        with self._lock:
            self._passages, self._retriever = passages, retriever

    def search(self, query: str, k: int) -> list[Passage]:
        """The ``k`` passages that match ``query`` best, best first; none that share no word with it."""
        with self._lock:
            passages, retriever = self._passages, self._retriever
        tokens = _tokens([query])
        if retriever is None or not tokens[0]:
            return []
        k = min(k, len(passages))
        indexes, scores = retriever.retrieve(tokens, k=k, show_progress=False)
        found = [
            Passage(passages[i][0], passages[i][1], float(s))
            for i, s in zip(indexes[0], scores[0], strict=True)
        ]
        return [p for p in found if p.score > 0]

    def top_articles(self, ticket: Ticket, k: int) -> list[Article]:
        """The ``k`` articles with the best-matching passages for the ticket, best first."""
        chosen: list[Article] = []
        for passage in self.search(ticket_query(ticket), k * 8):
            if passage.article not in chosen:
                chosen.append(passage.article)
            if len(chosen) == k:
                break
        return chosen

    def prompt_passages(self, ticket: Ticket, count_tokens: Callable[[str], int], budget: int) -> list[str]:
        """The best passages for the ticket that fit ``budget`` tokens together, best first."""
        chosen: list[str] = []
        used = 0
        for passage in self.search(ticket_query(ticket), 10):
            cost = count_tokens(passage.text)
            if used + cost > budget:
                continue
            chosen.append(passage.text)
            used += cost
        return chosen


def _tokens(texts: Iterable[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


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

    def links(self, ticket: Ticket) -> list[tuple[str, str]]:
        return [(a.title, a.url) for a in self.index.top_articles(ticket, self.articles_shown)]

    def passages(self, model: str, ticket: Ticket, count_tokens: Callable[[str], int]) -> list[str]:
        if model not in self.grounded_models:
            return []
        return self.index.prompt_passages(ticket, count_tokens, self.prompt_tokens)
