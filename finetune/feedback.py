"""`draftdesk finetune feedback`: the bot's ratings and the replies agents sent, as training data.

Input is plain data (this package does not read the bot's store: `draftdesk/commands/feedback.py` does,
and hands over ``RatedDraft`` rows and the tickets read from Zendesk). Output folder::

    sft/  train.jsonl, eval.jsonl, card.json   the agents' public replies, as `prepare` makes them
    kto/  train.jsonl, eval.jsonl              each rated draft: prompt, completion, label
    dpo/  train.jsonl, eval.jsonl              per round: prompt, chosen, rejected
    card.json, card.md                         counts per filter, per model and version, per score

- **KTO**: every rated draft; ``label`` is true when the mean of its ratings is ≥ 3 (the study's
  positive).
- **DPO**: in each round (one customer message), every draft rated ≤ 2 on average is ``rejected``
  against the round's best draft rated ≥ 4, or, if none, the reply the agent actually sent next.
- The prompt of a KTO or DPO row is the exact prompt the rated model drafted from, with personal
  data replaced by placeholders (the model saw the customer's mail as it was, quotes and all);
  completions and sent replies get `prepare`'s cleaning (quoted mail and signatures cut) and
  placeholders too. The names replaced are the ones `prepare` replaces: every comment author of
  the tickets (requesters, CC'd end users, the agents who answered and signed), and the support
  team's names the bot reads from Zendesk (``staff_names``: an agent a customer names who never
  wrote in that ticket). Exact duplicate rows are dropped, and one split by ticket serves all three
  sets, so no ticket is on both sides of any of them.
- With ``max_length`` (``[finetune.train] max_length``, counted by the base model's tokenizer) a
  KTO or DPO row whose prompt and completion do not fit gets the bot's prompt for the ticket as it
  stood, cut to the room the completion leaves, as the bot cuts prompts (``core.prompt``: oldest
  comments first, then the middle of the customer's message; a grounded prompt keeps its passages);
  the completion stays whole. A row whose completion alone leaves no room is left out and counted.
  (`prepare`'s SFT rows carry their conversation, and `finetune train` rebuilds those itself.)

Everything depends only on the input and the settings: the same store and tickets give
byte-identical files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.domain import Ticket
from core.pii import Redactor
from core.ticket_text import model_text
from finetune.config import PrepareConfig
from finetune.dedup import deduplicate
from finetune.files import files_hash, write_json, write_jsonl, write_text
from finetune.fitting import fit_preference_prompt, shortened_prompt
from finetune.prepare import DATA_FILES, TicketComments, answer_examples, example_row
from finetune.split import split_tickets

POSITIVE_FROM = 3.0  # mean score: KTO's desirable (the study's positive, 3-5)
CHOSEN_FROM = 4.0  # a draft this good may be DPO's chosen
REJECTED_UP_TO = 2.0  # a draft this bad is DPO's rejected


@dataclass(frozen=True)
class RatedDraft:
    """One draft from the store with the scores its raters gave (empty: not rated)."""

    ticket_id: int
    round_number: int
    comment_id: int | None  # the customer message the round answered
    model: str
    model_version: str | None
    prompt: str | None  # None: drafted before prompts were recorded
    text: str | None  # None: the model failed
    scores: tuple[int, ...]
    language: str | None = None  # the customer's language of its round (None: not known)

    @property
    def mean(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None

    @property
    def version_label(self) -> str:
        return f"{self.model} @ {self.model_version}" if self.model_version else self.model


def ticket_comments(ticket: Ticket) -> TicketComments:
    """A ticket read from Zendesk in the export's shape, so `prepare`'s cleaning applies as it is."""
    return TicketComments(
        ticket.id,
        ticket.subject,
        [
            {
                "id": comment.id,
                "created_at": comment.created_at.isoformat(),
                "public": comment.public,
                "role": "requester" if comment.author_is_requester else comment.author_role or "agent",
                "body": comment.body,
            }
            for comment in ticket.comments
        ],
    )


def known_names(tickets: Iterable[Ticket], staff_names: Iterable[str] = ()) -> list[str]:
    """Every name `prepare`'s export would know for these tickets (requesters and comment authors),
    and the support team's: what the three sets redact."""
    names = {name for t in tickets for name in (t.requester_name, *t.author_names)} | set(staff_names)
    return sorted(name for name in names if name.strip())


def sent_reply(ticket: Ticket, comment_id: int | None) -> str | None:
    """The first public reply from the agents' side after the comment ``comment_id``."""
    if comment_id is None:
        return None
    after = False
    for comment in ticket.comments:
        if comment.id == comment_id:
            after = True
        elif after and comment.public and comment.by_agent:
            return comment.body
    return None


@dataclass
class _Cleaner:
    redactor: Redactor
    placeholders: Counter[str]

    def prompt(self, text: str) -> str:
        redacted = self.redactor.redact(text)
        self.placeholders.update(redacted.counts)
        return redacted.text

    def answer(self, text: str) -> str | None:
        redacted = model_text(text, self.redactor)
        if not redacted.text:
            return None
        self.placeholders.update(redacted.counts)
        return " " + redacted.text


@dataclass(frozen=True)
class _Budget:
    """Fits a KTO or DPO row to the training sequence (``max_length`` None: leaves it as it is)."""

    count_tokens: Callable[[str], int]
    max_length: int | None
    product_name: str
    names: Sequence[str]

    def fit(
        self, prompt: str, completions: Sequence[str], draft: RatedDraft, ticket: Ticket, counts: Counter[str]
    ) -> str | None:
        """``prompt``, or the bot's prompt for ``draft``'s message cut to fit beside the whole
        ``completions``; None: no fit. Counted in ``counts`` (``prompts_shortened``, ``too_long``)."""
        if self.max_length is None:
            return prompt

        def rebuild(room: int) -> str | None:
            return shortened_prompt(
                ticket, draft.comment_id, prompt, self.names, self.count_tokens, room, self.product_name
            )

        fitted = fit_preference_prompt(prompt, completions, self.count_tokens, self.max_length, rebuild)
        if fitted is None:
            counts["too_long"] += 1
        elif fitted != prompt:
            counts["prompts_shortened"] += 1
        return fitted


def _exact_unique(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    kept = deduplicate(["\x00".join(str(row[k]) for k in keys) for row in rows], threshold=1.0).kept
    return [rows[i] for i in kept]


def build_feedback(
    drafts: Sequence[RatedDraft],
    tickets: Mapping[int, Ticket],
    out_dir: Path,
    config: PrepareConfig,
    product_name: str,
    count_tokens: Callable[[str], int],
    counts: Mapping[str, int] | None = None,
    source: str = "store",
    staff_names: Sequence[str] = (),
    max_length: int | None = None,
    counted_with: str = "approximation (characters / 4)",
) -> dict[str, Any]:
    """Write the three datasets and the card (see the module doc); returns the card.

    ``tickets``: the drafted tickets Zendesk still has; drafts of any other ticket (deleted) are
    left out. ``counts``: what the caller already filtered, for the card. ``staff_names``: the
    agents and admins (`ZendeskGateway.staff_names`), redacted like every comment author.
    ``max_length``: the training sequence KTO and DPO rows are fitted to, in ``count_tokens``'s
    tokens (``counted_with`` names the counter for the card); None: rows as they are.
    """
    out_dir = Path(out_dir)
    filters: Counter[str] = Counter(counts or {})
    placeholders: Counter[str] = Counter()
    names = known_names(tickets.values(), staff_names)
    clean = _Cleaner(Redactor(names), placeholders)
    budget = _Budget(count_tokens, max_length, product_name, names)
    per_version: dict[str, Counter[str]] = defaultdict(Counter)
    per_score: Counter[int] = Counter()

    filters["drafts"] = len(drafts)
    usable: list[RatedDraft] = []
    for draft in drafts:
        stats = per_version[draft.version_label]
        stats["drafts"] += 1
        if draft.ticket_id not in tickets:
            filters["drafts_ticket_deleted"] += 1
        elif draft.text is None:
            filters["drafts_failed"] += 1
        elif not draft.scores:
            filters["drafts_unrated"] += 1
        elif draft.prompt is None:
            filters["drafts_without_prompt"] += 1
        else:
            usable.append(draft)
            stats["rated"] += 1
            stats["ratings"] += len(draft.scores)
            per_score.update(draft.scores)
    filters["drafts_rated_with_prompt"] = len(usable)

    kto: list[dict[str, Any]] = []
    fits: Counter[str] = Counter()
    for draft in usable:
        completion = clean.answer(draft.text or "")
        if completion is None:
            filters["kto_empty_after_cleaning"] += 1
            continue
        prompt = budget.fit(
            clean.prompt(draft.prompt or ""), [completion], draft, tickets[draft.ticket_id], fits
        )
        if prompt is None:
            continue
        label = (draft.mean or 0) >= POSITIVE_FROM
        per_version[draft.version_label]["desirable" if label else "undesirable"] += 1
        kto.append(
            {
                "ticket_id": draft.ticket_id,
                "prompt": prompt,
                "completion": completion,
                "label": label,
                "mean_score": round(draft.mean or 0, 3),
                "model": draft.model,
                "model_version": draft.model_version,
                "language": draft.language,
            }
        )
    filters.update({f"kto_{key}": count for key, count in fits.items()})
    filters["kto_rows"] = len(kto)
    kto = _exact_unique(kto, ("prompt", "completion", "label"))
    filters["kto_rows_after_exact_dedup"] = len(kto)

    dpo = _pairs(usable, tickets, clean, budget, filters, per_version)
    filters["dpo_pairs"] = len(dpo)
    dpo = _exact_unique(dpo, ("prompt", "chosen", "rejected"))
    filters["dpo_pairs_after_exact_dedup"] = len(dpo)

    sft_filters: Counter[str] = Counter(tickets_exported=len(tickets))
    languages = {d.ticket_id: d.language for d in drafts if d.language}
    drafted = [replace(ticket_comments(tickets[t]), language=languages.get(t)) for t in sorted(tickets)]
    examples, sft_dups = answer_examples(
        drafted, clean.redactor, placeholders, sft_filters, config, count_tokens, product_name
    )

    split = split_tickets(
        {e.ticket_id for e in examples} | {r["ticket_id"] for r in kto + dpo},
        config.eval_fraction,
        config.seed,
    )

    def write_set(name: str, rows: list[dict[str, Any]]) -> dict[str, int]:
        train = [r for r in rows if r["ticket_id"] in split.train]
        held_out = [r for r in rows if r["ticket_id"] in split.eval]
        write_jsonl(out_dir / name / "train.jsonl", train)
        write_jsonl(out_dir / name / "eval.jsonl", held_out)
        return {"train": len(train), "eval": len(held_out)}

    sizes = {
        "sft": write_set("sft", [example_row(e) for e in examples]),
        "kto": write_set("kto", kto),
        "dpo": write_set("dpo", dpo),
    }
    write_jsonl(out_dir / "sft" / "articles.jsonl", [])
    settings = {
        "pairs": config.pairs,
        "near_duplicate_threshold": config.near_duplicate_threshold,
        "eval_fraction": config.eval_fraction,
        "seed": config.seed,
        "max_prompt_tokens": config.max_prompt_tokens,
        "min_answer_chars": config.min_answer_chars,
        "product_name": product_name,
    }
    fitting = {"max_length": max_length, "tokens_counted_with": counted_with}
    write_json(
        out_dir / "sft" / "card.json",
        {
            "source": source,
            "dataset_hash": files_hash(out_dir / "sft" / name for name in DATA_FILES),
            "settings": settings,
            "filters": dict(sft_filters),
            "duplicates": {"exact": len(sft_dups.exact), "near": len(sft_dups.near)},
        },
    )
    card = {
        "source": source,
        "settings": {
            **settings,
            **fitting,
            "kto_positive_from": POSITIVE_FROM,
            "dpo_chosen_from": CHOSEN_FROM,
        },
        "filters": dict(sorted(filters.items())),
        "sft_filters": dict(sft_filters),
        "sizes": sizes,
        "hashes": {
            name: files_hash(out_dir / name / f for f in ("train.jsonl", "eval.jsonl"))
            for name in ("sft", "kto", "dpo")
        },
        "per_model_version": {label: dict(sorted(c.items())) for label, c in sorted(per_version.items())},
        "per_score": {str(score): per_score.get(score, 0) for score in range(1, 6)},
        "placeholders": dict(sorted(placeholders.items())),
        "train_tickets": sorted(split.train),
        "eval_tickets": sorted(split.eval),
    }
    write_json(out_dir / "card.json", card)
    write_text(out_dir / "card.md", render_card(card))
    return card


def _pairs(
    drafts: Sequence[RatedDraft],
    tickets: Mapping[int, Ticket],
    clean: _Cleaner,
    budget: _Budget,
    filters: Counter[str],
    per_version: dict[str, Counter[str]],
) -> list[dict[str, Any]]:
    rounds: dict[tuple[int, int], list[RatedDraft]] = defaultdict(list)
    for draft in drafts:
        rounds[(draft.ticket_id, draft.round_number)].append(draft)
    rows = []
    fits: Counter[str] = Counter()
    for (ticket_id, _number), members in sorted(rounds.items()):
        rejected = [d for d in members if (d.mean or 0) <= REJECTED_UP_TO]
        if not rejected:
            continue
        good = sorted((d for d in members if (d.mean or 0) >= CHOSEN_FROM), key=lambda d: -(d.mean or 0))
        chosen_text, chosen_from = None, ""
        if good:
            chosen_text, chosen_from = clean.answer(good[0].text or ""), "draft"
        if chosen_text is None:
            reply = sent_reply(tickets[ticket_id], members[0].comment_id)
            chosen_text, chosen_from = (clean.answer(reply), "sent_reply") if reply else (None, "")
        if chosen_text is None:
            filters["dpo_rounds_without_chosen"] += 1
            continue
        filters[f"dpo_chosen_{chosen_from}"] += len(rejected)
        for bad in rejected:
            rejected_text = clean.answer(bad.text or "")
            if rejected_text is None or rejected_text == chosen_text:
                continue
            prompt = budget.fit(
                clean.prompt(bad.prompt or ""), [chosen_text, rejected_text], bad, tickets[ticket_id], fits
            )
            if prompt is None:
                continue
            per_version[bad.version_label]["dpo_rejected"] += 1
            if chosen_from == "draft":
                per_version[good[0].version_label]["dpo_chosen"] += 1
            rows.append(
                {
                    "ticket_id": ticket_id,
                    "prompt": prompt,
                    "chosen": chosen_text,
                    "rejected": rejected_text,
                    "chosen_from": chosen_from,
                    "model": bad.model,
                    "model_version": bad.model_version,
                }
            )
    filters.update({f"dpo_{key}": count for key, count in fits.items()})
    return rows


FILTER_LABELS = {
    "drafts": "drafts of the tickets considered",
    "drafts_ticket_deleted": "left out: ticket deleted in Zendesk",
    "drafts_failed": "left out: the model produced no draft",
    "drafts_unrated": "left out: not rated (or every vote removed)",
    "drafts_without_prompt": "left out: drafted before prompts were recorded",
    "drafts_rated_with_prompt": "rated drafts used",
    "kto_prompts_shortened": "KTO prompts shortened to fit max_length",
    "kto_too_long": "left out: KTO rows whose completion leaves no room for a prompt in max_length",
    "kto_rows": "KTO rows",
    "kto_rows_after_exact_dedup": "KTO rows after exact duplicates removed",
    "dpo_prompts_shortened": "DPO prompts shortened to fit max_length",
    "dpo_too_long": "left out: DPO pairs whose completions leave no room for a prompt in max_length",
    "dpo_pairs": "DPO pairs",
    "dpo_pairs_after_exact_dedup": "DPO pairs after exact duplicates removed",
    "dpo_rounds_without_chosen": "rounds with a bad draft but nothing to prefer",
}


def render_card(card: dict[str, Any]) -> str:
    """The feedback card as Markdown; ``card.json`` holds the same for programs."""
    lines = ["# Feedback dataset card", "", f"- source: {card['source']}"]
    settings = card["settings"]
    if settings.get("max_length"):
        lines.append(
            f"- KTO and DPO rows fitted to max_length {settings['max_length']} tokens "
            f"({settings['tokens_counted_with']})"
        )
    lines += [
        f"- {name}: {size['train']} train / {size['eval']} eval" for name, size in card["sizes"].items()
    ]
    lines += ["", "## Filters", "", "| step | count |", "|---|---:|"]
    for key, label in FILTER_LABELS.items():
        if key in card["filters"]:
            lines.append(f"| {label} | {card['filters'][key]} |")
    for key, value in card["sft_filters"].items():
        lines.append(f"| SFT: {key.replace('_', ' ')} | {value} |")
    lines += ["", "## Per model and version", ""]
    columns = ("drafts", "rated", "ratings", "desirable", "undesirable", "dpo_chosen", "dpo_rejected")
    lines += ["| model @ version | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    for label, counts in card["per_model_version"].items():
        lines.append(f"| {label} | " + " | ".join(str(counts.get(c, 0)) for c in columns) + " |")
    lines += ["", "## Ratings per score", "", "| score | ratings |", "|---:|---:|"]
    lines += [f"| {score} | {count} |" for score, count in card["per_score"].items()]
    lines += ["", "## Personal data replaced", "", "| placeholder | count |", "|---|---:|"]
    lines += [f"| `<{kind}>` | {count} |" for kind, count in card["placeholders"].items()]
    lines.append("")
    return "\n".join(lines)


__all__ = ["RatedDraft", "build_feedback", "known_names", "render_card", "sent_reply", "ticket_comments"]
