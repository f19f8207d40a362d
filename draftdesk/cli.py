"""draftdesk: three blind draft replies for every Zendesk ticket, rated by your agents in Slack.

Commands: run (the bot), doctor, jobs (list, retry, drop), backup, restore, report, votes export, digest,
demo, finetune (export, prepare, train, eval, feedback), models (status, promote, rollback),
serve-models (the models behind an OpenAI-compatible API), slack manifest, zendesk (setup,
test-webhook).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from bot.config import (
    ConfigError,
    Settings,
    StoreSettings,
    load_settings,
    load_store_settings,
    resolve_config_path,
)
from bot.errors import StartupError
from bot.reporting.outcomes import OutcomeStats, outcome_stats
from bot.reporting.report import FORMATS, render
from bot.store.atomic_storage import StoreDamaged
from bot.store.lock import StoreInUse
from bot.store.votes_io import UNDATED, VotesFileError, read_votes_and_languages, write_votes
from core.config import CONFIG_ENV, read_toml
from core.ports import Store
from draftdesk.commands import backup as backup_cli
from draftdesk.commands import jobs as jobs_cli
from draftdesk.commands import models as models_cli
from draftdesk.commands import restore as restore_cli
from draftdesk.commands import store_copy as store_copy_cli
from draftdesk.commands import zendesk as zendesk_cli
from draftdesk.commands.feedback import register_feedback
from draftdesk.logs import LOG_FORMATS, configure_logging
from finetune import cli as finetune_cli
from integrations.language_config import LanguageSettings
from integrations.slack_manifest import ManifestError, app_manifest
from models import serve as serve_models
from models.spec import ModelLoadError


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2024-01-31, got {value!r}") from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"use one of {', '.join(LOG_LEVELS)} (any case), got {value!r}")
    return level


def _log_format(value: str) -> str:
    if value.lower() not in LOG_FORMATS:
        raise argparse.ArgumentTypeError(f"use text or json, got {value!r}")
    return value.lower()


def _add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """--log-level and --log-format before or after the command: only the top level sets defaults."""
    level = os.environ.get("DRAFTDESK_LOG_LEVEL", "INFO") if top else argparse.SUPPRESS
    parser.add_argument("--log-level", type=_log_level, default=level, help="DEBUG, INFO, WARNING or ERROR")
    log_format = os.environ.get("DRAFTDESK_LOG_FORMAT", "text") if top else argparse.SUPPRESS
    parser.add_argument(
        "--log-format",
        type=_log_format,
        default=log_format,
        help="text (default) or json: one JSON object a line, for log shippers",
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_global_options(child, top=False)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("draftdesk")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="draftdesk", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"draftdesk {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot: intake, drafts, Slack listeners, weekly digest")
    run.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="Tables 1 and 2 of the ratings, per model")
    report.add_argument(
        "--config",
        help="config file (default: $DRAFTDESK_CONFIG or ./config.toml); with --input only when named "
        "here or in $DRAFTDESK_CONFIG: its [[models]] order and [digest] baseline",
    )
    report.add_argument("--since", type=_date, help="first day included (YYYY-MM-DD)")
    report.add_argument("--until", type=_date, help="last day included (YYYY-MM-DD)")
    report.add_argument("--format", choices=FORMATS, default="text")
    report.add_argument(
        "--input", type=Path, help="compute from a votes file (CSV or JSONL) instead of the store"
    )
    report.add_argument(
        "--baseline",
        help="the model the others are compared with (default: [digest] baseline, else the first "
        "[[models]] entry without an adapter, else the first model)",
    )
    report.add_argument("--chart", type=Path, help="also write the digest's chart (PNG) to this file")
    report.set_defaults(func=cmd_report)

    votes = sub.add_parser("votes", help="votes stored by the bot")
    votes_sub = votes.add_subparsers(dest="votes_command", required=True)
    export = votes_sub.add_parser("export", help="write every vote as CSV or JSON Lines")
    export.add_argument("--config")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(func=cmd_votes_export)

    demo = sub.add_parser(
        "demo",
        help="the study in miniature, offline: small models trained on a sample product, the whole loop",
    )
    demo.add_argument("--workdir", type=Path, default=Path(".draftdesk/demo"), help="config and store")
    demo.add_argument(
        "--cache",
        type=Path,
        default=Path(".draftdesk/demo-models"),
        help="where the trained demo models are kept between runs",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a few training steps only: checks the machinery in seconds; the drafts will not read well",
    )
    demo.set_defaults(func=cmd_demo)
    doctor = sub.add_parser(
        "doctor", help="check the configuration, Slack, Zendesk and the models without starting"
    )
    doctor.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    doctor.set_defaults(func=cmd_doctor)

    digest = sub.add_parser("digest", help="the weekly digest")
    digest.add_argument("--config")
    digest.add_argument(
        "--preview", action="store_true", required=True, help="print the last 7 days' digest; post nothing"
    )
    digest.set_defaults(func=cmd_digest_preview)

    slack = sub.add_parser("slack", help="the Slack app: its manifest")
    slack_sub = slack.add_subparsers(dest="slack_command", required=True)
    manifest = slack_sub.add_parser(
        "manifest", help="print the Slack app manifest (JSON) for Create New App → From an app manifest"
    )
    manifest.add_argument("--config", help="config file, for [slack] mode (default: socket)")
    manifest.add_argument("--mode", choices=("socket", "http"), help="override [slack] mode")
    manifest.add_argument("--public-url", help="http mode: the https:// address Slack reaches the bot at")
    manifest.add_argument("--name", default="draftdesk", help="the app's name in Slack")
    manifest.set_defaults(func=cmd_slack_manifest)
    # Further command groups register here: each module adds its parser and sets `func`.
    jobs_cli.register(sub)
    backup_cli.register(sub)
    restore_cli.register(sub)
    store_copy_cli.register(sub)
    finetune_cli.register(sub)
    zendesk_cli.register(sub)
    register_feedback(sub)
    models_cli.register(sub)
    serve_models.register(sub)
    _add_global_options(parser, top=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format, os.environ)
    try:
        return args.func(args)
    except ConfigError as exc:
        print("draftdesk: the configuration has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except StoreDamaged as exc:
        print(f"draftdesk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("draftdesk: interrupted", file=sys.stderr)
        return 130
    except StoreInUse as exc:
        print(
            f"draftdesk: {exc}: stop `draftdesk run` first (`draftdesk jobs list` works while it runs)",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError as exc:
        if not _stdout_closed():
            print(f"draftdesk: {exc}", file=sys.stderr)
            return 2
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # `jobs list | head`: all it wanted
        return 0
    except (VotesFileError, OSError, StartupError, ManifestError, ModelLoadError) as exc:
        print(f"draftdesk: {exc}", file=sys.stderr)
        return 2


def _stdout_closed() -> bool:
    """Whether the reader of stdout went away (as opposed to some other pipe breaking)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    return False


def _settings(args: argparse.Namespace) -> Settings:
    """Every section the bot uses, and its secrets."""
    return load_settings(resolve_config_path(args.config, os.environ), need_secrets=True)


def _store_settings(args: argparse.Namespace) -> StoreSettings:
    """Only `[storage]` and `[[models]]`: the reports run where no Slack or Zendesk is configured."""
    return load_store_settings(resolve_config_path(args.config, os.environ))


def cmd_doctor(args: argparse.Namespace) -> int:
    from draftdesk.commands.doctor import print_checklist, run_checks

    return print_checklist(run_checks(resolve_config_path(args.config, os.environ)))


def cmd_digest_preview(args: argparse.Namespace) -> int:
    """The digest as it would be posted now, as text: no Slack, nothing recorded."""
    from bot.slack.blocks import message_lines
    from bot.slack.digest import DigestService

    settings = _store_settings(args)
    names = [m.name for m in settings.models]
    untuned = [m.name for m in settings.models if not m.adapter]
    store = _open_store(settings)
    service = DigestService(
        store,
        _NoChat(),
        settings.digest,
        names,
        untuned=untuned,
        candidates=lambda votes: models_cli.standings(votes, settings),
    )
    try:
        content = service.compose(datetime.now(UTC))
    finally:
        store.close()
    lines = message_lines({"text": content.text, "blocks": content.blocks})
    print("\n".join(html.unescape(line) for line in lines))  # as Slack shows it: "<", not "&lt;"
    return 0


class _NoChat:
    """The preview composes a digest and sends nothing: any call here is a bug."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the digest preview must not call Slack ({name})")


def cmd_slack_manifest(args: argparse.Namespace) -> int:
    mode = args.mode
    if mode is None:
        path = resolve_config_path(args.config, os.environ)
        configured = read_toml(path).get("slack", {}) if path.is_file() or args.config else {}
        mode = configured.get("mode", "socket") if isinstance(configured, dict) else "socket"
    if mode == "socket" and args.public_url:
        print(
            "draftdesk slack manifest: Socket Mode needs no public address, --public-url is not used "
            "(pass --mode http for an app that Slack calls over HTTP)",
            file=sys.stderr,
        )
    manifest = app_manifest(mode == "socket", args.public_url, args.name)
    print(json.dumps(manifest, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from draftdesk.demo.models import FULL, QUICK, DemoBuildError
    from draftdesk.demo.run import run_demo

    for folder in (args.workdir, args.cache):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(
                f"draftdesk demo: cannot create {folder.resolve()}: {exc.strerror or exc}: pass --workdir "
                "and --cache folders you can write to",
                file=sys.stderr,
            )
            return 2
    try:
        return run_demo(args.workdir, args.cache, QUICK if args.quick else FULL)
    except DemoBuildError as exc:
        print(f"draftdesk demo: {exc}", file=sys.stderr)
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    from draftdesk.app import build
    from draftdesk.commands.doctor import FAIL, WARN, check_settings

    settings = _settings(args)
    checks = check_settings(settings)  # doctor's checks, before anything is opened or loaded
    for check in checks:
        if check.status == WARN:
            logging.getLogger(__name__).warning("%s: %s", check.name, check.detail)
    failed = [check for check in checks if check.status == FAIL]
    if failed:
        print(
            f"draftdesk: cannot start, {len(failed)} problem(s) (`draftdesk doctor` shows every check):",
            file=sys.stderr,
        )
        for check in failed:
            print(f"  - {check.name}: {check.detail}", file=sys.stderr)
        return 2
    build(settings).run_until_signal()
    return 0


def _window(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(since, time.min, UTC) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min, UTC) if until else None
    return start, end


def cmd_report(args: argparse.Namespace) -> int:
    from bot.reporting.languages import DEFAULT_MIN_TICKETS, vote_languages
    from bot.reporting.period_report import UnknownBaseline, period_report  # scipy, statsmodels: only here
    from bot.slack.digest import store_round_language

    start, end = _window(args.since, args.until)
    if args.since and args.until and args.since > args.until:
        print("draftdesk: --since is after --until", file=sys.stderr)
        return 2
    if args.chart and not args.chart.resolve().parent.is_dir():
        print(f"draftdesk: --chart {args.chart.resolve()}: its folder does not exist", file=sys.stderr)
        return 2
    models: list[str] = []
    untuned: list[str] = []
    baseline: str | None = args.baseline
    sent: list[OutcomeStats] = []  # a votes file has no replies to compare with
    languages: dict[str, str] | None = None  # nor the rounds' languages
    # A votes file may come from another deployment: its config is read only when named.
    settings = _store_settings(args) if not args.input or _config_named(args) else None
    if settings is not None:
        models = [m.name for m in settings.models]
        untuned = [m.name for m in settings.models if not m.adapter]
        baseline = args.baseline or settings.digest.baseline
    if args.input:
        where = args.input.resolve()
        if args.input.is_dir():
            raise VotesFileError(f"--input {where} is a folder: pass a votes file (CSV or JSON Lines)")
        if not args.input.is_file():
            raise VotesFileError(
                f"--input {where}: no such file: pass a votes file written by `draftdesk votes export`"
            )
        votes, file_languages = read_votes_and_languages(_votes_text(args.input), str(args.input))
        if file_languages:  # an export of this version: each vote's customer language
            default = (settings.languages if settings else LanguageSettings()).default
            languages = {vote.draft_id: file_languages.get(vote.draft_id, default) for vote in votes}
        if start or end:
            undated = sum(1 for v in votes if v.voted_at == UNDATED)
            if undated:
                print(
                    f"draftdesk: {undated} vote(s) in {where} have no voted_at: left out of --since/--until "
                    "(drop those options to count them)",
                    file=sys.stderr,
                )
            votes = [v for v in votes if (not start or v.voted_at >= start) and (not end or v.voted_at < end)]
    else:
        assert settings is not None
        store = _open_store(settings)
        try:
            votes = store.votes(start, end)
            sent = outcome_stats(store.outcomes(start, end), models)
            languages = vote_languages(votes, store_round_language(store), settings.languages.default)
        finally:
            store.close()
    try:
        report = period_report(
            votes,
            models,
            untuned,
            datetime.now(UTC),
            sent,
            args.since,
            args.until,
            baseline,
            languages,
            settings.languages.compare_min_tickets if settings else DEFAULT_MIN_TICKETS,
        )
    except UnknownBaseline as exc:
        print(f"draftdesk: {exc}", file=sys.stderr)
        return 2
    output = render(report, args.format)
    sys.stdout.write(output if output.endswith("\n") else output + "\n")
    sys.stdout.flush()
    if args.chart:
        from bot.reporting.chart import digest_chart

        args.chart.write_bytes(
            digest_chart(
                report.rows,
                report.extras.analysis.trend if report.extras.analysis else (),
                f"Draft ratings, {args.since or 'beginning'} to {args.until or 'now'}",
            )
        )
        print(f"chart written to {args.chart.resolve()}", file=sys.stderr)
    return 0


def _config_named(args: argparse.Namespace) -> bool:
    """Whether a config file was named (``--config`` or $DRAFTDESK_CONFIG), not ./config.toml assumed."""
    return bool(args.config or os.environ.get(CONFIG_ENV))


def _votes_text(path: Path) -> str:
    """A votes file's text (a UTF-8 byte-order mark, as Excel writes it, is dropped)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VotesFileError(
            f'--input {path.resolve()} is not UTF-8 (byte {exc.start + 1}): save it as "CSV UTF-8" '
            "(Excel) or re-export it with `draftdesk votes export`"
        ) from exc


def cmd_votes_export(args: argparse.Namespace) -> int:
    from bot.reporting.languages import vote_languages
    from bot.slack.digest import store_round_language

    settings = _store_settings(args)
    store = _open_store(settings)
    try:
        votes = store.votes()
        languages = vote_languages(votes, store_round_language(store), settings.languages.default)
    finally:
        store.close()
    if args.output:
        with args.output.open("w", encoding="utf-8", newline="") as out:
            count = write_votes(votes, out, args.format, languages)
        print(f"wrote {count} vote(s) to {args.output.resolve()}", file=sys.stderr)
    else:
        write_votes(votes, sys.stdout, args.format, languages)
    return 0


def _open_store(settings: StoreSettings) -> Store:
    """The configured store, for reading: the PostgreSQL database, or the files read-only."""
    from draftdesk.commands.stores import open_for_reading

    return open_for_reading(settings.storage_path, settings.database)


if __name__ == "__main__":
    raise SystemExit(main())
