"""Retrieval over Help Center articles (bm25s): articles as plain text, cut into passages of about a
paragraph, searched by what a ticket asks. No Zendesk calls, no files, no Slack: the bot keeps the
index in step with Zendesk (`bot.drafting.grounding`) and `finetune prepare` builds one from an export, so a
grounded model sees the same passages in training as when it drafts.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bm25s

from core.domain import Ticket

# bm25s sets its own logger to DEBUG when imported, so "Building index from tokens" reached every
# log at any level: let it follow the level the operator chose instead.
logging.getLogger("bm25s").setLevel(logging.NOTSET)

PASSAGE_WORDS = 80  # a passage: about a paragraph, so a prompt gets the part that answers
PROMPT_CANDIDATES = 10  # passages considered for a prompt before the token budget picks
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
    latest = ticket.latest_customer_comment
    return f"{ticket.subject}\n{latest.body if latest else ''}"


# bm25s's stop-word lists, by ISO 639-1 code: a language without one is indexed with every word.
STOPWORD_LANGUAGES = frozenset(
    {"da", "de", "en", "es", "fr", "it", "ko", "nl", "no", "pt", "ru", "sv", "tr", "zh"}
)


class ArticleIndex:
    """A BM25 index over the passages of some articles, all in one ``language`` (its stop words are
    left out of the articles and the queries alike). Thread-safe: ``replace`` swaps in a new set of
    articles while other threads search."""

    def __init__(self, articles: Iterable[Article] = (), language: str = "en") -> None:
        self.language = language
        self._stopwords: str | None = language if language in STOPWORD_LANGUAGES else None
        self._lock = threading.Lock()
        self._passages: list[tuple[Article, str]] = []
        self._retriever: bm25s.BM25 | None = None
        self.replace(articles)

    def replace(self, articles: Iterable[Article]) -> None:
        """Index ``articles`` instead of the ones indexed so far."""
        passages = [(a, p) for a in articles for p in split_passages(a)]
        retriever = None
        if passages:
            retriever = bm25s.BM25()
            retriever.index(_tokens([p for _, p in passages], self._stopwords), show_progress=False)
        with self._lock:
            self._passages, self._retriever = passages, retriever

    def search(self, query: str, k: int) -> list[Passage]:
        """The ``k`` passages that match ``query`` best, best first; none that share no word with it."""
        with self._lock:
            passages, retriever = self._passages, self._retriever
        tokens = _tokens([query], self._stopwords)
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
        """The best passages for the ticket that fit ``budget`` tokens together, best first: what
        ``core.prompt.build_prompt(..., sources=)`` gets for a grounded model."""
        chosen: list[str] = []
        used = 0
        for passage in self.search(ticket_query(ticket), PROMPT_CANDIDATES):
            cost = count_tokens(passage.text)
            if used + cost > budget:
                continue
            chosen.append(passage.text)
            used += cost
        return chosen


def _tokens(texts: Iterable[str], stopwords: str | None) -> list[list[str]]:
    return bm25s.tokenize(list(texts), stopwords=stopwords, return_ids=False, show_progress=False)
