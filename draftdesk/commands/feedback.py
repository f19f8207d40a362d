"""`draftdesk finetune feedback [--since DATE] --out DATASET`: the store and Zendesk to training data.

The layers keep `finetune/` away from the bot's store (both are applications), so this entry point
does the reading: it opens the store read-only (`draftdesk run` may be writing), collects the
drafted tickets, their drafts and the scores of their votes as plain ``RatedDraft`` rows, reads each
ticket from Zendesk (a deleted one is left out) and the support team's names (redacted like every
comment author, as `prepare` and the bot redact them), and hands everything to
``finetune.feedback.build_feedback``, which cleans, redacts, pairs, deduplicates, splits and writes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from core.domain import Ticket
from core.languages import is_language_code
from core.ports import Store, TicketNotFound, TicketSource

if TYPE_CHECKING:  # the dataset libraries load only when the command runs
    from finetune.feedback import RatedDraft


def register_feedback(sub: argparse._SubParsersAction) -> None:
    """Add ``feedback`` to the ``finetune`` command group."""
    group = sub.choices["finetune"]
    commands = next(a for a in group._actions if isinstance(a, argparse._SubParsersAction))
    feedback = commands.add_parser(
        "feedback", help="the bot's ratings and the replies agents sent as SFT, KTO and DPO datasets"
    )
    feedback.add_argument("--config")
    feedback.add_argument("--out", type=Path, required=True, help="dataset folder (sft/, kto/, dpo/ inside)")
    feedback.add_argument(
        "--since", type=date.fromisoformat, help="tickets drafted or rated since YYYY-MM-DD"
    )
    feedback.add_argument(
        "--tokenizer",
        help="the base model's tokenizer (its folder or a downloaded hub id): counts the SFT prompts' tokens "
        "and fits KTO and DPO rows to [finetune.train] max_length (default: about 4 characters a token)",
    )
    feedback.add_argument(
        "--language",
        help="only the tickets in this customer language (ISO 639-1, e.g. de), as each round recorded "
        "it ([languages] default for rounds recorded before languages were)",
    )
    feedback.set_defaults(func=cmd_feedback)


def collect(
    store: Store, since: datetime | None = None, language: str | None = None, default_language: str = "en"
) -> list[RatedDraft]:
    """Every draft of the tickets drafted (or rated) since ``since``, with its raters' scores; with
    ``language``, only the drafts of rounds in that language (a round recorded before languages were
    counts as ``default_language``)."""
    from finetune.feedback import RatedDraft

    votes = store.votes()
    tickets = {job.ticket_id for job in store.jobs() if since is None or job.created_at >= since}
    tickets |= {vote.ticket_id for vote in votes if since is None or vote.voted_at >= since}
    scores: dict[str, list[int]] = defaultdict(list)
    for vote in votes:
        scores[vote.draft_id].append(vote.score)
    return [
        RatedDraft(
            ticket_id=draft.ticket_id,
            round_number=draft.round_number,
            comment_id=draft.comment_id,
            model=draft.model,
            model_version=draft.model_version,
            prompt=draft.prompt,
            text=draft.text,
            scores=tuple(scores.get(draft.id, ())),
            language=draft.language or default_language,
        )
        for ticket in sorted(tickets)
        for draft in store.drafts_for_ticket(ticket)
        if language is None or (draft.language or default_language) == language
    ]


def read_tickets(source: TicketSource, ids: Iterable[int], progress: bool = False) -> dict[int, Ticket]:
    """The tickets Zendesk still has; a deleted one (TicketNotFound) is simply absent."""
    from tqdm import tqdm

    found = {}
    for ticket_id in tqdm(
        sorted(set(ids)), desc="reading tickets from Zendesk", unit=" tickets", disable=not progress
    ):
        try:
            found[ticket_id] = source.fetch_ticket(ticket_id)
        except TicketNotFound:
            continue
    return found


def cmd_feedback(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_store_settings, resolve_config_path
    from core.db_url import masked
    from draftdesk.commands.stores import open_for_reading
    from finetune.config import load_finetune_context
    from finetune.feedback import build_feedback
    from finetune.prepare import token_counter
    from integrations.zendesk import ZendeskError, ZendeskGateway

    if args.language is not None and not is_language_code(args.language):
        print(
            "draftdesk finetune feedback: --language: expected an ISO 639-1 code like "
            f'"de", got {args.language!r}',
            file=sys.stderr,
        )
        return 2
    path = resolve_config_path(args.config, os.environ)
    store_settings = load_store_settings(path)
    storage = store_settings.storage_path
    context = load_finetune_context(path, os.environ)
    if context.zendesk is None:
        raise ConfigError(['[zendesk]: missing: set subdomain = "acme" (for acme.zendesk.com) or url'])
    secrets = context.secrets
    if not secrets.zendesk_email or not secrets.zendesk_api_token:
        raise ConfigError(
            ["ZENDESK_EMAIL / ZENDESK_API_TOKEN: not set: export the agent e-mail and an API token"]
        )
    if store_settings.database is None and not storage.exists():
        print(
            f"draftdesk finetune feedback: no store at {storage}: run `draftdesk run` first", file=sys.stderr
        )
        return 2
    since = datetime.combine(args.since, time.min, UTC) if args.since else None
    store = open_for_reading(storage, store_settings.database)
    try:
        drafts = collect(store, since, args.language, store_settings.languages.default)
    finally:
        store.close()
    if not drafts:
        where = masked(store_settings.database.url) if store_settings.database else storage
        when = (f" since {args.since}" if args.since else "") + (
            f" in {args.language}" if args.language else ""
        )
        print(
            f"draftdesk finetune feedback: no rated drafts{when} in {where}: nothing to learn from yet "
            "(pass an earlier --since, or let the agents rate some drafts first)",
            file=sys.stderr,
        )
        return 1
    gateway = ZendeskGateway.from_settings(
        context.zendesk.url, secrets.zendesk_email, secrets.zendesk_api_token
    )
    try:
        tickets = read_tickets(gateway, (d.ticket_id for d in drafts), progress=True)
        staff = gateway.staff_names()  # redacted too, as the bot redacts them when drafting
    except ZendeskError as exc:
        print(f"draftdesk finetune feedback: {exc}", file=sys.stderr)
        return 2
    config = context.finetune.prepare
    product = config.product_name or context.product_name or "our product"
    count_tokens, counted_with = token_counter(args.tokenizer)
    if not args.tokenizer:
        print(
            "draftdesk finetune feedback: KTO and DPO rows fitted to [finetune.train] max_length by an "
            "approximation (4 characters a token): pass --tokenizer BASE_MODEL to count the model's tokens",
            file=sys.stderr,
        )
    card = build_feedback(
        drafts,
        tickets,
        args.out,
        config,
        product,
        count_tokens,
        source=str(storage),
        staff_names=staff,
        max_length=context.finetune.train.max_length,
        counted_with=counted_with,
    )
    sizes = card["sizes"]
    print(
        f"feedback in {args.out.resolve()}: "
        + ", ".join(f"{name} {size['train']} train / {size['eval']} eval" for name, size in sizes.items())
        + f"; card: {args.out.resolve() / 'card.md'}"
    )
    for name, size in sizes.items():
        if not size["train"]:
            print(f"  {name}: empty: the card says which filter left nothing", file=sys.stderr)
        elif not size["eval"]:
            print(
                f"  {name}: no held-out rows (every ticket fell in train): training works, but its held-out "
                "margin cannot be measured until more tickets are rated",
                file=sys.stderr,
            )
    return 0
