"""Settings from `config.toml` and secrets from the environment, validated as a whole.

Every problem in the file is collected and reported together, one line each, naming the key
and what to put there, so a user fixes the file in one pass rather than one error at a time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.config import (
    ConfigError,
    TableReader,
    parse_iso_datetime,
    read_toml,
    resolve_config_path,
)
from core.secrets import Secrets
from integrations.zendesk_config import ZendeskSettings, parse_zendesk
from models.config import load_model_settings, parse_engine, parse_models
from models.spec import EngineSettings, ModelSpec

__all__ = [  # the names other modules and the tests use from here
    "ConfigError",
    "DigestSettings",
    "IntakeSettings",
    "Secrets",
    "ServerSettings",
    "Settings",
    "SlackSettings",
    "WorkerSettings",
    "ZendeskSettings",
    "load_model_settings",
    "load_settings",
    "parse_settings",
    "resolve_config_path",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SlackSettings:
    mode: str  # "socket" | "http"
    channel: str
    api_url: str = "https://slack.com/api/"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 3000
    max_body_bytes: int = 2_000_000
    # Serve GET /healthz even when nothing else needs the server (Socket Mode with polling).
    health_check: bool = False


@dataclass(frozen=True)
class IntakeSettings:
    mode: str = "webhook"  # "webhook" | "poll" | "both"
    poll_interval_seconds: int = 60
    poll_since: datetime | None = None  # None: the first start


@dataclass(frozen=True)
class WorkerSettings:
    max_attempts: int = 5
    retry_base_seconds: float = 10.0
    product_name: str = "our product"
    batch_tickets: int = 8  # tickets whose drafts are generated together
    batch_wait_seconds: float = 0.25  # the longest a ticket waits for its batch to fill


@dataclass(frozen=True)
class DigestSettings:
    enabled: bool = True
    day_of_week: str = "mon"
    hour: int = 9
    timezone: str = "UTC"
    channel: str | None = None
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    slack: SlackSettings
    server: ServerSettings
    zendesk: ZendeskSettings
    intake: IntakeSettings
    worker: WorkerSettings
    digest: DigestSettings
    storage_path: Path
    models: tuple[ModelSpec, ...]
    secrets: Secrets = field(repr=False)
    source: Path | None = None
    # `[finetune]` and each model's `[models.finetune]` table, as written: validated by finetune/.
    finetune: dict[str, Any] = field(default_factory=dict)
    model_finetune: dict[str, dict[str, Any]] = field(default_factory=dict)
    engine: EngineSettings = field(default_factory=EngineSettings)  # `[engine]`: local batching limits


def load_settings(path: Path, env: Mapping[str, str] | None = None, *, need_secrets: bool = True) -> Settings:
    env = os.environ if env is None else env
    raw = read_toml(path)
    return parse_settings(raw, env, base_dir=path.parent, need_secrets=need_secrets, source=path)


def parse_settings(
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    base_dir: Path = Path("."),
    need_secrets: bool = True,
    source: Path | None = None,
) -> Settings:
    problems: list[str] = []
    secrets = Secrets.from_env(env)
    known_tables = {"slack", "server", "zendesk", "intake", "worker", "digest", "storage", "models"}
    known_tables.add("finetune")
    known_tables.add("engine")
    for name in sorted(set(raw) - known_tables):
        problems.append(f"[{name}]: unknown section (known: {', '.join(sorted(known_tables))})")

    slack = _parse_slack(TableReader(raw.get("slack"), "slack", problems), secrets)
    server = _parse_server(TableReader(raw.get("server"), "server", problems))
    zendesk = parse_zendesk(TableReader(raw.get("zendesk"), "zendesk", problems))
    intake = _parse_intake(TableReader(raw.get("intake"), "intake", problems))
    worker = _parse_worker(TableReader(raw.get("worker"), "worker", problems))
    digest = _parse_digest(TableReader(raw.get("digest"), "digest", problems))
    storage = TableReader(raw.get("storage"), "storage", problems)
    storage.unknown_keys({"path"})
    storage_path = Path(storage.get("path", str, ".draftdesk/draftdesk.json", "a file path"))
    if not storage_path.is_absolute():
        storage_path = base_dir / storage_path
    models = parse_models(raw.get("models"), base_dir, problems)
    engine = parse_engine(TableReader(raw.get("engine"), "engine", problems))
    finetune = raw.get("finetune") or {}
    if not isinstance(finetune, dict):
        problems.append("[finetune]: must be a table")
        finetune = {}
    model_finetune = {
        str(table.get("name")): table["finetune"]
        for table in raw.get("models") or []
        if isinstance(table, dict) and isinstance(table.get("finetune"), dict)
    }

    if digest.enabled and not digest.channel and not digest.users:
        digest = replace(digest, channel=slack.channel)  # default: the drafts channel
    if need_secrets:
        problems.extend(_missing_secrets(slack, intake, secrets))
    if problems:
        raise ConfigError(problems)
    return Settings(
        slack,
        server,
        zendesk,
        intake,
        worker,
        digest,
        storage_path,
        models,
        secrets,
        source,
        finetune=finetune,
        model_finetune=model_finetune,
        engine=engine,
    )


def _parse_slack(r: TableReader, secrets: Secrets) -> SlackSettings:
    r.unknown_keys({"mode", "channel", "api_url"})
    default_mode = "socket" if secrets.slack_app_token else "http"
    mode = r.choice("mode", ("socket", "http"), default_mode)
    channel = r.get("channel", str, "", 'a channel ID like "C0123456789"')
    if not channel:
        r.problem("channel", 'missing: set the channel ID for drafts, e.g. channel = "C0123456789"')
    api_url = r.get("api_url", str, "https://slack.com/api/", "a URL")
    if not api_url.startswith(("http://", "https://")):
        r.problem("api_url", f"must start with http:// or https://, got {api_url!r}")
    if not api_url.endswith("/"):
        api_url += "/"
    return SlackSettings(mode=mode, channel=channel, api_url=api_url)


def _parse_server(r: TableReader) -> ServerSettings:
    r.unknown_keys({"host", "port", "max_body_bytes", "health_check"})
    return ServerSettings(
        host=r.get("host", str, "0.0.0.0", "a host name or address"),
        port=r.number("port", 3000, minimum=0, maximum=65535, integer=True),
        max_body_bytes=r.number("max_body_bytes", 2_000_000, minimum=1024, maximum=100_000_000, integer=True),
        health_check=r.get("health_check", bool, False, "true or false"),
    )


def _parse_intake(r: TableReader) -> IntakeSettings:
    r.unknown_keys({"mode", "poll_interval_seconds", "poll_since"})
    mode = r.choice("mode", ("webhook", "poll", "both"), "webhook")
    interval = r.number("poll_interval_seconds", 60, minimum=10, maximum=86_400, integer=True)
    since_raw = r.table.get("poll_since")
    since: datetime | None = None
    if since_raw is not None:
        since = parse_iso_datetime(since_raw)
        if since is None:
            r.problem("poll_since", f'expected an ISO date like "2024-01-31" or omit it, got {since_raw!r}')
    return IntakeSettings(mode=mode, poll_interval_seconds=interval, poll_since=since)


def _parse_worker(r: TableReader) -> WorkerSettings:
    r.unknown_keys(
        {"max_attempts", "retry_base_seconds", "product_name", "batch_tickets", "batch_wait_seconds"}
    )
    return WorkerSettings(
        batch_tickets=r.number("batch_tickets", 8, minimum=1, maximum=256, integer=True),
        batch_wait_seconds=float(r.number("batch_wait_seconds", 0.25, minimum=0, maximum=60, integer=False)),
        max_attempts=r.number("max_attempts", 5, minimum=1, maximum=100, integer=True),
        retry_base_seconds=float(
            r.number("retry_base_seconds", 10.0, minimum=0, maximum=3600, integer=False)
        ),
        product_name=r.get("product_name", str, "our product", "a product name"),
    )


def _parse_digest(r: TableReader) -> DigestSettings:
    r.unknown_keys({"enabled", "day_of_week", "hour", "timezone", "channel", "users"})
    day = r.get("day_of_week", str, "mon", 'a day like "mon"').lower()[:3]
    if day not in DAYS:
        r.problem("day_of_week", f"must be one of {', '.join(DAYS)}, got {r.table.get('day_of_week')!r}")
        day = "mon"
    timezone = r.get("timezone", str, "UTC", 'an IANA time zone like "Europe/Kyiv"')
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem("timezone", f'unknown time zone {timezone!r}: use an IANA name like "Europe/Berlin"')
        timezone = "UTC"
    users = r.get("users", list, [], 'a list of Slack user IDs like ["U0123"]')
    if not all(isinstance(u, str) and u for u in users):
        r.problem("users", f'expected Slack user IDs as strings like ["U0123"], got {users!r}')
        users = []
    enabled = r.get("enabled", bool, True, "true or false")
    channel = r.get("channel", str, None, "a channel ID") or None
    return DigestSettings(
        enabled=enabled,
        day_of_week=day,
        hour=r.number("hour", 9, minimum=0, maximum=23, integer=True),
        timezone=timezone,
        channel=channel,
        users=tuple(users),
    )


def _missing_secrets(slack: SlackSettings, intake: IntakeSettings, secrets: Secrets) -> list[str]:
    problems = []
    if not secrets.slack_bot_token:
        problems.append(
            "SLACK_BOT_TOKEN: not set: export the Bot User OAuth Token (xoxb-…) from your Slack app"
        )
    if slack.mode == "socket" and not secrets.slack_app_token:
        problems.append(
            'SLACK_APP_TOKEN: not set but slack.mode is "socket": export an app-level token (xapp-…, '
            'scope connections:write) or set [slack] mode = "http"'
        )
    if slack.mode == "http" and not secrets.slack_signing_secret:
        problems.append(
            'SLACK_SIGNING_SECRET: not set but slack.mode is "http": export the Signing Secret '
            "from your Slack app's Basic Information page"
        )
    if not secrets.zendesk_email or not secrets.zendesk_api_token:
        problems.append(
            "ZENDESK_EMAIL / ZENDESK_API_TOKEN: not set: export the agent e-mail and an API token "
            "(Admin Center → Apps and integrations → Zendesk API)"
        )
    if intake.mode in ("webhook", "both") and not secrets.zendesk_webhook_secret:
        problems.append(
            "ZENDESK_WEBHOOK_SECRET: not set but intake.mode needs webhooks: export the webhook's signing "
            'secret (Admin Center → Webhooks → your webhook) or set [intake] mode = "poll"'
        )
    return problems
