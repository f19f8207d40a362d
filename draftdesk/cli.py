"""`draftdesk` command line: run, report, votes export, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from bot.comparisons import analyse, choose_baseline
from bot.config import (
    ConfigError,
    Settings,
    StoreSettings,
    load_settings,
    load_store_settings,
    resolve_config_path,
)
from bot.errors import StartupError
from bot.report import FORMATS, render
from bot.stats import model_stats
from bot.votes_io import VotesFileError, read_votes, write_votes
from core.ports import Store
from finetune import cli as finetune_cli
from models import serve as serve_models


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2024-01-31, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="draftdesk", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("DRAFTDESK_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot: intake, drafts, Slack listeners, weekly digest")
    run.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="Tables 1 and 2 of the ratings, per model")
    report.add_argument("--config")
    report.add_argument("--since", type=_date, help="first day included (YYYY-MM-DD)")
    report.add_argument("--until", type=_date, help="last day included (YYYY-MM-DD)")
    report.add_argument("--format", choices=FORMATS, default="text")
    report.add_argument(
        "--input", type=Path, help="compute from a votes file (CSV or JSONL) instead of the store"
    )
    report.add_argument(
        "--baseline",
        help="the model the others are compared with (default: the first [[models]] entry without an "
        "adapter, else the first model)",
    )
    report.set_defaults(func=cmd_report)

    votes = sub.add_parser("votes", help="votes stored by the bot")
    votes_sub = votes.add_subparsers(dest="votes_command", required=True)
    export = votes_sub.add_parser("export", help="write every vote as CSV or JSON Lines")
    export.add_argument("--config")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(func=cmd_votes_export)

    demo = sub.add_parser(
        "demo", help="the whole loop offline: sample tickets, stand-ins for Slack and Zendesk"
    )
    demo.add_argument("--workdir", type=Path, default=Path(".draftdesk/demo"))
    demo.set_defaults(func=cmd_demo)
    # Further command groups register here: each module adds its parser and sets `func`.
    finetune_cli.register(sub)
    serve_models.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except ConfigError as exc:
        print("draftdesk: the configuration has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except (VotesFileError, FileNotFoundError, StartupError) as exc:
        print(f"draftdesk: {exc}", file=sys.stderr)
        return 2


def _settings(args: argparse.Namespace) -> Settings:
    """Every section the bot uses, and its secrets."""
    return load_settings(resolve_config_path(args.config, os.environ), need_secrets=True)


def _store_settings(args: argparse.Namespace) -> StoreSettings:
    """Only `[storage]` and `[[models]]`: the reports run where no Slack or Zendesk is configured."""
    return load_store_settings(resolve_config_path(args.config, os.environ))


def cmd_demo(args: argparse.Namespace) -> int:
    from draftdesk.demo import run_demo

    return run_demo(args.workdir)


def cmd_run(args: argparse.Namespace) -> int:
    from draftdesk.app import build

    settings = _settings(args)
    build(settings).run_until_signal()
    return 0


def _window(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(since, time.min, UTC) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min, UTC) if until else None
    return start, end


def cmd_report(args: argparse.Namespace) -> int:
    start, end = _window(args.since, args.until)
    if args.since and args.until and args.since > args.until:
        print("draftdesk: --since is after --until", file=sys.stderr)
        return 2
    models: list[str] = []
    untuned: list[str] = []
    if args.input:
        votes = read_votes(args.input.read_text(encoding="utf-8"), str(args.input))
        if start or end:
            votes = [v for v in votes if (not start or v.voted_at >= start) and (not end or v.voted_at < end)]
    else:
        settings = _store_settings(args)
        models = [m.name for m in settings.models]
        untuned = [m.name for m in settings.models if not m.adapter]
        votes = _open_store(settings.storage_path).votes(start, end)
    rows = model_stats(votes, models)
    names = [row.model for row in rows]
    if args.baseline and args.baseline not in names:
        known = ", ".join(names)
        print(f"draftdesk: --baseline {args.baseline!r} is not one of the models: {known}", file=sys.stderr)
        return 2
    baseline = choose_baseline(names, untuned, args.baseline)
    analysis = analyse(votes, names, baseline, datetime.now(UTC))
    sys.stdout.write(render(rows, args.format, args.since, args.until, analysis))
    return 0


def cmd_votes_export(args: argparse.Namespace) -> int:
    votes = _open_store(_store_settings(args).storage_path).votes()
    if args.output:
        with args.output.open("w", encoding="utf-8", newline="") as out:
            count = write_votes(votes, out, args.format)
        print(f"wrote {count} vote(s) to {args.output}", file=sys.stderr)
    else:
        write_votes(votes, sys.stdout, args.format)
    return 0


def _open_store(storage_path: Path) -> Store:
    from bot.store import TinyDBStore

    if not storage_path.exists():
        raise FileNotFoundError(
            f"no store at {storage_path}: run `draftdesk run` first or check [storage] path"
        )
    return TinyDBStore(storage_path, read_only=True)


if __name__ == "__main__":
    raise SystemExit(main())
