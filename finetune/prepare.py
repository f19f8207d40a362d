"""`draftdesk finetune prepare`: an export folder to a training dataset with its card.

Pipeline (each step counted in the card): tickets → cleaned public conversations (HTML to text,
quoted mails and signatures cut) → personal data to placeholders (names from the export's user
records, patterns for the rest; the e-mail addresses and phone numbers the Help Center publishes
are the company's and stay) → question–answer examples in the bot's prompt format → unanswered
and too-short answers dropped → exact, then near-duplicate questions dropped → a train/eval split
by ticket. Articles are deduplicated and written beside the pairs as plain text, unredacted: they
are published, and the bot puts them into prompts as Zendesk serves them.

Output folder::

    train.jsonl   {"ticket_id", "prompt", "completion", "subject", "context": [{"role", "text"}],
                   "language": the customer's (ISO 639-1)}
    eval.jsonl    the same, for held-out tickets
    articles.jsonl {"id", "locale", "title", "url", "text"}
    card.json, card.md

With ``grounding`` (``finetune prepare --grounding``, for a model with ``grounding = true``) each
prompt also holds the Help Center passages the bot would put there when drafting: the exported
articles of the ``[grounding]`` locales, indexed as the bot indexes them
(`integrations.help_center_index`), searched with the ticket as it stood before the answer, fitted
to ``[grounding] prompt_tokens``. Rows then carry their ``sources`` and the card says so. As in the
bot, a ticket's passages come from its language's articles (the first locale's when it has none).

Every example keeps its ticket's language (`finetune.languages`); a prompt in another language than
English asks for the reply in it, as the bot's do (English prompts are unchanged). With ``language``
(``prepare --language de``) only that language's tickets are used, split by ticket as always.

The result depends only on the export and the settings (no clock, no randomness without a
seed), so re-running gives byte-identical files and the same dataset hash.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.domain import Ticket
from core.html_text import html_to_text
from core.languages import locale_language
from core.pii import PublicContacts, Redactor
from core.ticket_text import model_text
from finetune.card import render_markdown
from finetune.config import PrepareConfig
from finetune.dedup import DedupResult, deduplicate
from finetune.files import files_hash, read_json, read_jsonl, write_json, write_jsonl, write_text
from finetune.languages import ticket_language
from finetune.pairs import Conversation, Example, SourceFinder, Turn, conversation_examples
from finetune.split import split_tickets
from integrations.grounding_config import GroundingSettings
from integrations.help_center_index import PASSAGE_WORDS, Article, ArticleIndex
from integrations.help_center_index import html_to_text as article_text
from integrations.language_config import LanguageSettings
from integrations.language_detector import TicketLanguages

log = logging.getLogger(__name__)

DATA_FILES = ("train.jsonl", "eval.jsonl", "articles.jsonl")
CUSTOMER_ROLES = frozenset({"requester", "end-user"})


class ExportNotFound(FileNotFoundError):
    """The input folder is not an export: says which command makes one."""


def approximate_tokens(text: str) -> int:
    """About four characters a token: the budget rule when no tokenizer is given."""
    return math.ceil(len(text) / 4)


def token_counter(tokenizer: str | None) -> tuple[Callable[[str], int], str]:
    """A counting function and its description: a local tokenizer's, or the approximation."""
    if not tokenizer:
        return approximate_tokens, "approximation (characters / 4)"
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(tokenizer)
    except (OSError, ValueError) as exc:
        raise OSError(
            f"--tokenizer {tokenizer}: no tokenizer there ({type(exc).__name__}); pass the folder of the "
            "base model the dataset is for (or a hub id already downloaded: the hub is not asked offline)"
        ) from exc

    def count(text: str) -> int:
        return len(loaded(text, add_special_tokens=True, verbose=False)["input_ids"])

    return count, f"tokenizer {tokenizer}"


@dataclass
class TicketComments:
    """A ticket as exported: its subject and its comments as Zendesk's records (with ``role``)."""

    id: int
    subject: str
    comments: list[dict[str, Any]]
    language: str | None = None  # the customer's (ISO 639-1)


def _read_tickets(export_dir: Path, languages: TicketLanguages) -> list[TicketComments]:
    folder = export_dir / "tickets"
    users = export_dir / "users.jsonl"
    locales = (
        {int(row["id"]): row["locale"] for row in read_jsonl(users) if row.get("locale")}
        if users.is_file()
        else {}
    )
    tickets = []
    for path in sorted(folder.glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        data = read_json(path)
        tickets.append(
            TicketComments(
                int(data["ticket"]["id"]),
                data["ticket"].get("subject") or "",
                data["comments"],
                ticket_language(data, locales, languages),
            )
        )
    return tickets


def _known_names(export_dir: Path) -> list[str]:
    path = export_dir / "users.jsonl"
    return sorted({row["name"] for row in read_jsonl(path) if row.get("name")}) if path.is_file() else []


def clean_conversation(
    ticket: TicketComments, redactor: Redactor, placeholders: Counter[str]
) -> Conversation:
    turns = []
    for comment in sorted(ticket.comments, key=lambda c: (c.get("created_at") or "", c.get("id") or 0)):
        if not comment.get("public", True):
            continue  # internal notes never reach a prompt or an answer
        role = comment.get("role")
        if role == "agent":
            kind = "agent"
        elif role in CUSTOMER_ROLES:
            kind = "customer"
        else:
            continue  # an author Zendesk no longer knows: not attributable
        body = comment.get("body") or html_to_text(comment.get("html_body") or "")
        redacted = model_text(body, redactor)  # what the bot drafts from, too
        if not redacted.text:
            continue
        placeholders.update(redacted.counts)
        turns.append(Turn(kind, redacted.text))  # type: ignore[arg-type]
    subject = redactor.redact(ticket.subject)
    placeholders.update(subject.counts)
    return Conversation(ticket.id, subject.text, tuple(turns), ticket.language)


def _articles(export_dir: Path) -> list[dict[str, Any]]:
    """The exported articles as the dataset's plain text (published text: not redacted)."""
    metadata_path = export_dir / "articles" / "metadata.json"
    if not metadata_path.is_file():
        return []
    rows = []
    for meta in read_json(metadata_path):
        folder = export_dir / "articles" / meta["locale"]
        html_path, text_path = folder / f"{meta['id']}.html", folder / f"{meta['id']}.txt"
        if html_path.is_file():
            text = html_to_text(html_path.read_text(encoding="utf-8"))
        elif text_path.is_file():
            text = text_path.read_text(encoding="utf-8").split("\n\n", 1)[-1].strip()
        else:
            continue
        rows.append(
            {
                "id": meta["id"],
                "locale": meta["locale"],
                "title": meta.get("title") or "",
                "url": meta.get("url") or "",
                "text": text,
            }
        )
    return rows


def answer_examples(
    tickets: list[TicketComments],
    redactor: Redactor,
    placeholders: Counter[str],
    filters: Counter[str],
    config: PrepareConfig,
    count_tokens: Callable[[str], int],
    product_name: str,
    progress: bool = False,
    find_sources: SourceFinder | None = None,
) -> tuple[list[Example], DedupResult]:
    """The agents' public answers as examples: cleaned, redacted, paired, short answers and
    duplicate questions dropped, each step counted in ``filters``. ``find_sources``: grounded prompts."""
    examples: list[Example] = []
    for ticket in tqdm(tickets, desc="prepare tickets", unit=" tickets", disable=not progress):
        cleaned = clean_conversation(ticket, redactor, placeholders)
        if not any(turn.role == "customer" for turn in cleaned.turns):
            continue
        filters["tickets_with_question"] += 1
        found = conversation_examples(
            cleaned,
            config.pairs,
            count_tokens,
            config.max_prompt_tokens,
            product_name,  # type: ignore[arg-type]
            find_sources,
        )
        if found:
            filters["tickets_answered"] += 1
        examples.extend(found)
    filters["examples"] = len(examples)
    examples = [e for e in examples if len(e.completion.strip()) >= config.min_answer_chars]
    filters["examples_after_short_answers"] = len(examples)
    result = deduplicate(
        [e.question for e in examples],
        threshold=config.near_duplicate_threshold,
        shingle_size=config.shingle_size,
        num_perm=config.num_perm,
        seed=config.seed,
    )
    filters["examples_after_exact_dedup"] = len(examples) - len(result.exact)
    examples = [examples[i] for i in result.kept]
    filters["examples_after_near_dedup"] = len(examples)
    return examples, result


def example_row(example: Example, grounded: bool = False) -> dict[str, Any]:
    row = {
        "ticket_id": example.ticket_id,
        "prompt": example.prompt,
        "completion": example.completion,
        "subject": example.subject,
        "context": [{"role": t.role, "text": t.text} for t in example.context],
        "language": example.language,
    }
    if grounded:
        row["sources"] = list(example.sources)
    return row


def help_center_articles(export_dir: Path, locales: Sequence[str]) -> list[Article]:
    """The exported articles of ``locales`` as the bot indexes them (its HTML-to-text, not the dataset's
    cleaning, and like the bot's, not redacted: the passages in a prompt are the published text)."""
    metadata_path = export_dir / "articles" / "metadata.json"
    if not metadata_path.is_file():
        return []
    wanted = {locale.lower() for locale in locales}
    articles = []
    for meta in read_json(metadata_path):
        locale = str(meta["locale"]).lower()
        html_path = export_dir / "articles" / meta["locale"] / f"{meta['id']}.html"
        if locale not in wanted or not html_path.is_file():
            continue
        text = article_text(html_path.read_text(encoding="utf-8"))
        articles.append(
            Article(
                int(meta["id"]),
                locale,
                meta.get("title") or "",
                meta.get("url") or "",
                text,
                meta.get("updated_at") or "",
            )
        )
    return articles


def _grounded_prompts(export_dir: Path, grounding: GroundingSettings) -> tuple[SourceFinder, list[Article]]:
    """What finds a ticket's passages (the bot's search, ``[grounding] prompt_tokens``) and the articles."""
    indexed = help_center_articles(export_dir, grounding.locales)
    if not indexed:
        raise ValueError(
            f"--grounding: {Path(export_dir).resolve()} holds no Help Center articles in "
            f"{', '.join(grounding.locales)}: "
            "export them (`draftdesk finetune export --locales ...`) or set [grounding] locales"
        )
    by_language: dict[str, list[Article]] = {}
    for article in indexed:
        by_language.setdefault(locale_language(article.locale) or "", []).append(article)
    indexes = {language: ArticleIndex(found, language) for language, found in by_language.items()}
    default = indexes.get(locale_language(grounding.locales[0]) or "") or next(iter(indexes.values()))
    budget = grounding.prompt_tokens

    def find_sources(ticket: Ticket, count: Callable[[str], int], language: str | None) -> list[str]:
        index = indexes.get(language or "", default)  # the bot's rule: its language's, else the default's
        return index.prompt_passages(ticket, count, budget)

    return find_sources, indexed


def _grounding_card(
    grounding: GroundingSettings, indexed: Sequence[Article], examples: Sequence[Example]
) -> dict[str, Any]:
    return {
        "locales": list(grounding.locales),
        "prompt_tokens": grounding.prompt_tokens,
        "articles_indexed": len(indexed),
        "passage_words": PASSAGE_WORDS,
        "examples_with_passages": sum(1 for e in examples if e.sources),
        "passages": sum(len(e.sources) for e in examples),
    }


def prepare_dataset(
    export_dir: Path,
    out_dir: Path,
    config: PrepareConfig,
    product_name: str,
    tokenizer: str | None = None,
    progress: bool = True,
    grounding: GroundingSettings | None = None,
    language: str | None = None,
    languages: LanguageSettings | None = None,
) -> dict[str, Any]:
    """Build the dataset in ``out_dir`` from the export in ``export_dir``; returns the card.
    ``grounding``: put Help Center passages into the prompts, as for a model with grounding on;
    ``language``: only the tickets in that language; ``languages``: how an export without recorded
    languages is read (`[languages]`)."""
    export_dir, out_dir = Path(export_dir), Path(out_dir)
    if not (export_dir / "tickets").is_dir() and not (export_dir / "articles").is_dir():
        raise ExportNotFound(
            f"{export_dir} holds no export (no tickets/ or articles/): run `draftdesk finetune export --out "
            f"{export_dir}` first"
        )
    count_tokens, counted_with = token_counter(tokenizer)
    articles = _articles(export_dir)
    public = PublicContacts.found_in(f"{a['title']}\n{a['text']}" for a in articles)
    redactor = Redactor(_known_names(export_dir), public)
    placeholders: Counter[str] = Counter()
    filters: Counter[str] = Counter()
    state_path = export_dir / "state.json"
    if state_path.is_file():
        filters["internal_notes"] = int(read_json(state_path).get("counts", {}).get("internal_notes", 0))

    find_sources, indexed = None, []
    if grounding is not None:
        find_sources, indexed = _grounded_prompts(export_dir, grounding)
    tickets = _read_tickets(export_dir, TicketLanguages(languages or LanguageSettings()))
    filters["tickets_exported"] = len(tickets)
    if language is not None:
        tickets = [t for t in tickets if t.language == language]
        filters["tickets_in_language"] = len(tickets)
    examples, result = answer_examples(
        tickets, redactor, placeholders, filters, config, count_tokens, product_name, progress, find_sources
    )

    split = split_tickets({e.ticket_id for e in examples}, config.eval_fraction, config.seed)
    train = [e for e in examples if e.ticket_id in split.train]
    held_out = [e for e in examples if e.ticket_id in split.eval]

    filters["articles_exported"] = len(articles)
    articles = [a for a in articles if a["text"].strip()]
    filters["articles_non_empty"] = len(articles)
    article_dedup = deduplicate(
        [f"{a['title']}\n{a['text']}" for a in articles],
        threshold=config.near_duplicate_threshold,
        shingle_size=config.shingle_size,
        num_perm=config.num_perm,
        seed=config.seed,
    )
    articles = [articles[i] for i in article_dedup.kept]
    filters["articles_after_dedup"] = len(articles)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "train.jsonl", (example_row(e, grounding is not None) for e in train))
    write_jsonl(out_dir / "eval.jsonl", (example_row(e, grounding is not None) for e in held_out))
    write_jsonl(out_dir / "articles.jsonl", articles)

    def part(rows: list[Example]) -> dict[str, int]:
        texts = [e.prompt + e.completion for e in rows]
        return {
            "examples": len(rows),
            "tickets": len({e.ticket_id for e in rows}),
            "characters": sum(len(t) for t in texts),
            "tokens": sum(count_tokens(t) for t in texts),
        }

    card = {
        "source": str(export_dir),
        "dataset_hash": files_hash(out_dir / name for name in DATA_FILES),
        "files": list(DATA_FILES),
        "tokens_counted_with": counted_with,
        "settings": {
            "pairs": config.pairs,
            "near_duplicate_threshold": config.near_duplicate_threshold,
            "shingle_size": config.shingle_size,
            "num_perm": config.num_perm,
            "eval_fraction": config.eval_fraction,
            "seed": config.seed,
            "max_prompt_tokens": config.max_prompt_tokens,
            "min_answer_chars": config.min_answer_chars,
            "product_name": product_name,
            "language": language,
        },
        "languages": dict(sorted(Counter(e.language or "" for e in train + held_out).items())),
        "filters": dict(filters),
        "duplicates": {
            "exact": len(result.exact),
            "near": len(result.near),
            "articles_exact": len(article_dedup.exact),
            "articles_near": len(article_dedup.near),
        },
        "splits": {
            "train": part(train),
            "eval": part(held_out),
            "articles": {
                "examples": len(articles),
                "characters": sum(len(a["text"]) for a in articles),
                "tokens": sum(count_tokens(a["text"]) for a in articles),
            },
        },
        "placeholders": dict(sorted(placeholders.items())),
        "public_contacts": {"emails": sorted(public.emails), "phones": sorted(public.phones)},
        **({"grounding": _grounding_card(grounding, indexed, train + held_out)} if grounding else {}),
        "train_tickets": sorted(split.train),
        "eval_tickets": sorted(split.eval),
    }
    write_json(out_dir / "card.json", card)
    write_text(out_dir / "card.md", render_markdown(card))
    log.info(
        "dataset: %d train / %d eval examples, %d articles; %d duplicates and %d unanswered tickets dropped",
        len(train),
        len(held_out),
        len(articles),
        len(result.exact) + len(result.near),
        filters["tickets_with_question"] - filters["tickets_answered"],
    )
    return card


def load_dataset_dir(
    path: Path,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict]:
    """(train rows, eval rows, articles, card) of a prepared dataset; says how to make one if missing."""
    path = Path(path)
    missing = [name for name in (*DATA_FILES, "card.json") if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} is not a prepared dataset (missing {', '.join(missing)}): run "
            "`draftdesk finetune prepare "
            f"--in EXPORT_DIR --out {path}` first"
        )
    return (
        list(read_jsonl(path / "train.jsonl")),
        list(read_jsonl(path / "eval.jsonl")),
        list(read_jsonl(path / "articles.jsonl")),
        read_json(path / "card.json"),
    )
