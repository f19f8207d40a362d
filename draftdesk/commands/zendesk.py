"""`draftdesk zendesk setup|test-webhook`: connect Zendesk to the bot without Admin Center clicks."""

from __future__ import annotations

import argparse
import os
import sys

from core.config import ConfigError, build_section, read_toml, resolve_config_path
from integrations.zendesk_config import ZendeskSettings
from integrations.zendesk_setup import (
    SECRET_HINT,
    WEBHOOK_NAME,
    WEBHOOK_PATH,
    ZendeskAdmin,
    ZendeskSetupError,
    explain_delivery,
    send_test_delivery,
    set_up,
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("zendesk", help="create the Zendesk webhook and triggers; test the webhook")
    commands = group.add_subparsers(dest="zendesk_command", required=True)
    setup = commands.add_parser(
        "setup", help="create or update the webhook and triggers through the Zendesk API (idempotent)"
    )
    setup.add_argument(
        "--config", help="config file, for [zendesk] (default: $DRAFTDESK_CONFIG or ./config.toml)"
    )
    setup.add_argument("--public-url", required=True, help="the https:// address Zendesk reaches the bot at")
    setup.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    setup.set_defaults(func=_guard(cmd_setup))
    test = commands.add_parser("test-webhook", help="send a signed test delivery to the running bot")
    test.add_argument(
        "--config", help="config file, for [server] port (default: $DRAFTDESK_CONFIG or ./config.toml)"
    )
    test.add_argument("--url", help=f"the bot's webhook URL (default: http://127.0.0.1:PORT{WEBHOOK_PATH})")
    test.add_argument(
        "--ticket", type=int, help="queue this ticket for drafts (default: a delivery that drafts nothing)"
    )
    test.set_defaults(func=_guard(cmd_test_webhook))


def _guard(command):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ZendeskSetupError as exc:
            print(f"draftdesk zendesk {args.zendesk_command}: {exc}", file=sys.stderr)
            return 2

    return run


def _config(args: argparse.Namespace) -> dict:
    path = resolve_config_path(args.config, os.environ)
    if not path.is_file():
        if args.config:
            raise ConfigError([f"{path}: not found"])
        return {}
    return read_toml(path)


def cmd_setup(args: argparse.Namespace) -> int:
    problems: list[str] = []
    raw = _config(args)
    zendesk = build_section(ZendeskSettings, raw.get("zendesk"), "zendesk", problems)
    problems += zendesk.problems()
    email, token = os.environ.get("ZENDESK_EMAIL", ""), os.environ.get("ZENDESK_API_TOKEN", "")
    if not email or not token:
        problems.append(
            "ZENDESK_EMAIL / ZENDESK_API_TOKEN: not set: export an admin's e-mail and an API token"
        )
    if not args.public_url.startswith(("https://", "http://")):
        problems.append(f"--public-url: must start with https://, got {args.public_url!r}")
    if problems:
        raise ConfigError(problems)
    steps = set_up(ZendeskAdmin(zendesk.url, email, token), args.public_url, dry_run=args.dry_run)
    for step in steps:
        shown = f" (id {step.id})" if step.id else ""
        print(f"{step.kind} {step.name!r}: {step.action}{shown}")
    if not args.dry_run:
        print("signing secret: " + SECRET_HINT.format(name=WEBHOOK_NAME))
        print(
            "then check the connection: draftdesk zendesk test-webhook --url "
            + args.public_url.rstrip("/")
            + WEBHOOK_PATH
        )
    return 0


def cmd_test_webhook(args: argparse.Namespace) -> int:
    secret = os.environ.get("ZENDESK_WEBHOOK_SECRET", "")
    if not secret:
        raise ConfigError(
            [
                "ZENDESK_WEBHOOK_SECRET: not set: export the webhook's signing secret ("
                + SECRET_HINT.format(name=WEBHOOK_NAME)
                + ")"
            ]
        )
    url = args.url
    if not url:
        server = _config(args).get("server") or {}
        url = f"http://127.0.0.1:{server.get('port', 3000)}{WEBHOOK_PATH}"
    status, answer = send_test_delivery(url, secret, args.ticket)
    print(f"{url} answered {status} {answer.strip()}")
    print(explain_delivery(status))
    return 0 if status == 200 else 1
