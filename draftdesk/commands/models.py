"""`draftdesk models status | promote NAME | rollback NAME`: candidates earn their place.

`status` shows each model's current adapter version and its candidate's, with their tickets,
ratings, positive shares and the always-valid sequential test between them (``bot.reporting.promotion``).
`promote` makes the candidate the current version (the model's LATEST) only when it wins, unless
``--force``, and writes the evidence into the adapter's manifest; `rollback` goes back to the
version it replaced. Both take effect at the next start of `draftdesk run`, which loads the adapters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.config import Settings, StoreSettings, load_store_settings, resolve_config_path
from core.domain import Vote
from models.spec import ModelSpec
from models.versions import (
    PromotionError,
    candidate_problem,
    promote_version,
    rollback_version,
    serves_candidate,
    version_of,
)

if TYPE_CHECKING:  # the statistics (scipy, statsmodels) load only for the commands that compute them
    from bot.reporting.promotion import CandidatePair, Standing


def candidate_pairs(specs: Sequence[ModelSpec]) -> list[CandidatePair]:
    """The models that serve a candidate, with the versions of both adapters."""
    from bot.reporting.promotion import CandidatePair

    return [
        CandidatePair(spec.name, version_of(spec.adapter), version_of(spec.candidate) or "")
        for spec in specs
        if serves_candidate(spec)
    ]


def standings(votes: Sequence[Vote], settings: StoreSettings | Settings) -> list[Standing]:
    """Each running candidate's standing under the `[promotion]` rules."""
    from bot.reporting.comparisons import choose_baseline  # scipy, statsmodels: only where used
    from bot.reporting.promotion import standing

    names = [m.name for m in settings.models]
    untuned = [m.name for m in settings.models if not m.adapter]
    baseline = choose_baseline(names, untuned, settings.digest.baseline)
    rules = settings.promotion
    return [
        standing(votes, pair, rules.min_tickets, rules.max_p, baseline)
        for pair in candidate_pairs(settings.models)
    ]


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="adapter versions: candidates against the current ones")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    status = models_sub.add_parser("status", help="each model's current and candidate version, rated")
    status.add_argument("--config")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(func=cmd_status)
    promote = models_sub.add_parser("promote", help="make a model's candidate current, when it wins")
    promote.add_argument("name", help="the [[models]] name")
    promote.add_argument("--config")
    promote.add_argument("--force", action="store_true", help="promote even without the evidence")
    promote.set_defaults(func=cmd_promote)
    rollback = models_sub.add_parser("rollback", help="back to the version the current one replaced")
    rollback.add_argument("name", help="the [[models]] name")
    rollback.add_argument("--config")
    rollback.set_defaults(func=cmd_rollback)


def _settings(args: argparse.Namespace) -> StoreSettings:
    return load_store_settings(resolve_config_path(args.config, os.environ))


def _votes(settings: StoreSettings) -> list[Vote]:
    from draftdesk.commands.stores import open_for_reading

    if settings.database is None and not settings.storage_path.exists():
        return []  # nothing rated yet: every candidate needs its ratings
    store = open_for_reading(settings.storage_path, settings.database)
    try:
        return store.votes()
    finally:
        store.close()


def cmd_status(args: argparse.Namespace) -> int:
    from bot.reporting.promotion import standing_lines

    settings = _settings(args)
    votes = _votes(settings)
    found = {s.pair.model: s for s in standings(votes, settings)}
    rows = [_status_row(spec, found.get(spec.name), votes) for spec in settings.models]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        name = str(row["model"])
        if "problem" in row:
            print(f"{name}: {row['problem']}")
        elif name in found:
            print("\n".join(standing_lines(found[name])))
        else:
            n, pct = row["current_ratings"], row["current_positive_pct"]
            share = f"{pct:.1f}% positive, n={n}" if pct is not None else "no ratings"
            print(f"{name}: current {row['current'] or 'untuned base'}: {share}; no candidate")
    return 0


def _status_row(spec: ModelSpec, found: Standing | None, votes: Sequence[Vote]) -> dict[str, object]:
    """One model in `models status --format json`: what the text lines say, every model included."""
    if problem := candidate_problem(spec):
        return {"model": spec.name, "problem": problem}
    if found is not None:
        against = [
            {
                "model": c.model,
                "baseline": c.baseline,
                "tickets": c.n_pairs,
                "diff_positive_pct": c.diff_positive_pct,
                "diff_ci_pct": c.diff_ci_pct,
                "p_mcnemar": c.mcnemar_p,
                "verdict": c.verdict,
            }
            for c in found.against_baseline
        ]
        return {**found.evidence(), "against_baseline": against}
    version = version_of(spec.adapter)
    rated = [v for v in votes if v.model == spec.name and v.model_version == version]
    positive = sum(v.score >= 3 for v in rated)
    return {
        "model": spec.name,
        "current": version,  # None: the untuned base
        "candidate": None,
        "current_ratings": len(rated),
        "current_positive_pct": 100 * positive / len(rated) if rated else None,
    }


def _spec(settings: StoreSettings, name: str) -> ModelSpec:
    for spec in settings.models:
        if spec.name == name:
            return spec
    known = ", ".join(m.name for m in settings.models)
    raise PromotionError(f"no [[models]] entry named {name!r} (models: {known})")


def cmd_promote(args: argparse.Namespace) -> int:
    from bot.reporting.promotion import standing_lines

    settings = _settings(args)
    try:
        spec = _spec(settings, args.name)
        if problem := candidate_problem(spec):
            raise PromotionError(problem)
        if not serves_candidate(spec):
            raise PromotionError(
                f'model {spec.name!r} has no candidate to promote: set candidate = "VERSION" under its '
                "[[models]] entry, let it draft for a while, then check `draftdesk models status`"
            )
        result = next(s for s in standings(_votes(settings), settings) if s.pair.model == spec.name)
        print("\n".join(standing_lines(result)))
        if not result.wins and not args.force:
            print(
                f"draftdesk: not promoted: the candidate has not won ({result.verdict}); the current "
                "version stays. --force promotes it anyway",
                file=sys.stderr,
            )
            return 1
        previous = promote_version(spec, result.evidence(), forced=not result.wins, now=_now())
    except PromotionError as exc:
        print(f"draftdesk: {exc}", file=sys.stderr)
        return 2
    print(
        f"promoted {result.pair.candidate} to current for {spec.name} (was {previous or 'the untuned base'}; "
        f"`draftdesk models rollback {spec.name}` goes back). Remove its candidate line from the config "
        "and restart `draftdesk run` to serve it."
    )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        old, new = rollback_version(_spec(settings, args.name), now=_now())
    except PromotionError as exc:
        print(f"draftdesk: {exc}", file=sys.stderr)
        return 2
    print(f"rolled {args.name} back from {old} to {new}; restart `draftdesk run` to serve it")
    return 0


def _now() -> str:
    return datetime.now(UTC).isoformat()
