"""Settings from `config.toml` and secrets from the environment, validated as a whole.

Every problem in the file is collected and reported together, one line each, naming the key
and what to put there, so a user fixes the file in one pass rather than one error at a time.
Each section is a dataclass below (or in models/ and integrations/) built by
``core.config.build_section``; what ties sections together (the digest's default channel, the
secrets each mode needs) is in :func:`parse_settings`.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.config import (
    ConfigError,
    build_section,
    out_of_range,
    parse_iso_datetime,
    read_toml,
    resolve_config_path,
    setting,
)
from core.db_url import effective_url, url_problem
from core.secrets import Secrets
from integrations.grounding_config import GroundingSettings
from integrations.language_config import LanguageSettings
from integrations.zendesk_config import ZendeskSettings
from models.config import load_model_settings, parse_engine, parse_models
from models.spec import EngineSettings, ModelSpec

__all__ = [  # the names other modules and the tests use from here
    "ConfigError",
    "DigestSettings",
    "GroundingSettings",
    "HealthSettings",
    "IntakeSettings",
    "LanguageSettings",
    "PromotionSettings",
    "Secrets",
    "ServerSettings",
    "Settings",
    "SlackSettings",
    "StorageSettings",
    "StoreSettings",
    "WorkerSettings",
    "ZendeskSettings",
    "load_model_settings",
    "load_settings",
    "load_store_settings",
    "parse_settings",
    "resolve_config_path",
]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = typing.get_args(Weekday)
# Sections `draftdesk run` accepts without reading them itself: finetune/ reads `[finetune]`.
BOT_SECTIONS = (
    "slack",
    "server",
    "health",
    "zendesk",
    "intake",
    "worker",
    "digest",
    "promotion",
    "grounding",
    "languages",
    "storage",
    "engine",
    "models",
)
OTHER_SECTIONS = ("finetune",)


@dataclass(frozen=True)
class SlackSettings:
    """`[slack]`: the Slack app that posts the drafts (tokens come from the environment)."""

    mode: Literal["socket", "http"] = setting(
        '"socket" (Socket Mode, no public URL) or "http" (events at /slack/events)',
        "http",
        shown_default='"socket" if SLACK_APP_TOKEN is set, else "http"',
    )
    channel: str = setting(
        'channel ID where ticket threads are posted, e.g. "C0123456789"', "", shown_default="required"
    )
    api_url: str = setting("Slack Web API base URL", "https://slack.com/api/")

    def __post_init__(self) -> None:
        if self.api_url.startswith(("http://", "https://")) and not self.api_url.endswith("/"):
            object.__setattr__(self, "api_url", self.api_url + "/")

    def problems(self) -> list[str]:
        problems = []
        if not self.channel:
            problems.append('channel: missing: set the channel ID for drafts, e.g. channel = "C0123456789"')
        if not self.api_url.startswith(("http://", "https://")):
            problems.append(f"api_url: must start with http:// or https://, got {self.api_url!r}")
        return problems


@dataclass(frozen=True)
class ServerSettings:
    """`[server]`: the HTTP server for Slack's HTTP mode, the Zendesk webhook and /healthz."""

    host: str = setting("address to listen on", "0.0.0.0")
    port: int = setting("port to listen on (0: any free port)", 3000)
    max_body_bytes: int = setting("largest request body accepted", 2_000_000)
    threads: int = setting("threads answering requests (each answer takes milliseconds)", 8)
    backlog: int = setting("connections that may wait to be accepted in a burst", 1024)
    health_check: bool = setting(
        "serve GET /healthz and GET /metrics even when nothing else needs the server (Socket Mode with "
        "polling)",
        False,
    )

    def problems(self) -> list[str]:
        return out_of_range(
            self,
            {
                "port": (0, 65535),
                "max_body_bytes": (1024, 100_000_000),
                "threads": (1, 256),
                "backlog": (1, 65535),
            },
        )


@dataclass(frozen=True)
class HealthSettings:
    """`[health]`: what GET /healthz checks, and when it answers 503 (degraded)."""

    check_interval_seconds: float = setting(
        "seconds a Slack, Zendesk or model-server check is reused before it is made again", 30.0
    )
    check_timeout_seconds: float = setting(
        "the longest a /healthz request waits for a check in progress; then it shows the last result", 2.0
    )
    worker_stale_seconds: float = setting(
        "degraded when the worker has not touched the queue for this long (it does every few seconds, "
        "or after each batch of drafts)",
        600.0,
    )
    queue_stale_seconds: float = setting(
        "degraded when the oldest queued job is older than this (drafts are not keeping up, or an "
        "upstream is down)",
        900.0,
    )

    def problems(self) -> list[str]:
        return out_of_range(
            self,
            {
                "check_interval_seconds": (1, 86_400),
                "check_timeout_seconds": (0.1, 60),
                "worker_stale_seconds": (10, 86_400),
                "queue_stale_seconds": (10, 30 * 86_400),
            },
        )


def _poll_since(value: Any) -> datetime:
    moment = parse_iso_datetime(value)
    if moment is None:
        raise ValueError(f'expected an ISO date like "2024-01-31" or omit it, got {value!r}')
    return moment


@dataclass(frozen=True)
class IntakeSettings:
    """`[intake]`: how tickets reach the bot."""

    mode: Literal["webhook", "poll", "both"] = setting(
        '"webhook" (Zendesk calls /zendesk/webhook), "poll" (the bot asks Zendesk) or "both"', "webhook"
    )
    poll_interval_seconds: int = setting("seconds between two polls", 60)
    poll_since: datetime | None = setting(
        "poll: backfill tickets changed since this ISO date or date-time",
        None,
        parse=_poll_since,
        shown_default="the first start",
    )

    def problems(self) -> list[str]:
        return out_of_range(self, {"poll_interval_seconds": (10, 86_400)})


@dataclass(frozen=True)
class WorkerSettings:
    """`[worker]`: drafting queued tickets."""

    batch_tickets: int = setting("queued tickets whose drafts are generated together", 8)
    batch_wait_seconds: float = setting("the longest a ticket waits for its batch to fill", 0.25)
    fetch_threads: int = setting("tickets read from Zendesk at once (a rate-limited read holds one)", 4)
    post_threads: int = setting("tickets posted to Slack at once", 2)
    max_attempts: int = setting("tries of a ticket before its job is marked failed", 5)
    retry_base_seconds: float = setting("wait before the first retry, doubled after each", 10.0)
    product_name: str = setting("product name in the prompt", "our product")

    def problems(self) -> list[str]:
        return out_of_range(
            self,
            {
                "batch_tickets": (1, 256),
                "batch_wait_seconds": (0, 60),
                "fetch_threads": (1, 32),
                "post_threads": (1, 16),
                "max_attempts": (1, 100),
                "retry_base_seconds": (0, 3600),
            },
        )


def _day_abbreviation(value: Any) -> Any:
    """A day written "Monday" or "MON" as "mon"; anything else as written, for the choice check."""
    if not isinstance(value, str):
        raise ValueError(f'expected a day like "mon", got {value!r}')
    day = value.lower()[:3]
    return day if day in DAYS else value


@dataclass(frozen=True)
class DigestSettings:
    """`[digest]`: the weekly summary of the ratings in Slack."""

    enabled: bool = setting("post the weekly digest", True)
    day_of_week: Weekday = setting('"mon" … "sun" (or the full name)', "mon", parse=_day_abbreviation)
    hour: int = setting("hour of the day it is posted, 0-23", 9)
    timezone: str = setting('IANA time zone of day and hour, e.g. "Europe/Kyiv"', "UTC")
    channel: str | None = setting("channel ID to post it in", None, shown_default="[slack] channel")
    users: tuple[str, ...] = setting('Slack user IDs who get it as a DM, e.g. ["U0123456789"]', ())
    baseline: str | None = setting(
        "the model the others are compared with (a [[models]] name)",
        None,
        shown_default="the first [[models]] entry without an adapter",
    )

    def problems(self) -> list[str]:
        problems = out_of_range(self, {"hour": (0, 23)})
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                f'timezone: unknown time zone {self.timezone!r}: use an IANA name like "Europe/Berlin"'
            )
        if not all(self.users):
            problems.append(f'users: expected Slack user IDs like ["U0123"], got {list(self.users)!r}')
        return problems


@dataclass(frozen=True)
class PromotionSettings:
    """`[promotion]`: when `draftdesk models promote` lets a candidate adapter replace the current one."""

    min_tickets: int = setting(
        "rated tickets each of the current and the candidate version needs before the test starts", 30
    )
    max_p: float = setting(
        "the most often a candidate that is no better may be promoted: the sequential test's bound, "
        "valid however often anyone looks",
        0.05,
    )
    renamed_keys: ClassVar[dict[str, str]] = {"min_ratings": "min_tickets"}  # now counted in tickets

    def problems(self) -> list[str]:
        return out_of_range(self, {"min_tickets": (2, 1_000_000), "max_p": (0.000001, 0.5)})


@dataclass(frozen=True)
class StorageSettings:
    """`[storage]`: where the bot keeps jobs, drafts and votes."""

    path: Path = setting(
        "the store's main file, its history in a folder beside it (path + .d); "
        "a relative path is relative to the config file",
        Path(".draftdesk/draftdesk.json"),
    )
    url: str = setting(
        "a PostgreSQL database instead of the files (libpq URI, postgresql://user@host:5432/draftdesk): "
        "two or more `draftdesk run` replicas may share it; the password belongs in the environment, "
        "DRAFTDESK_DATABASE_URL (which overrides this key); empty: the TinyDB files at path",
        "",
    )
    pool_size: int = setting("PostgreSQL: connections each process keeps open at most", 8)
    lease_seconds: int = setting(
        "PostgreSQL: how long a job claimed by a replica that stopped answering (killed, cut off) stays "
        "claimed before another replica takes it over; running replicas renew their claims",
        60,
    )

    def resolved(self, base_dir: Path) -> Path:
        return self.path if self.path.is_absolute() else base_dir / self.path

    def problems(self) -> list[str]:
        found = out_of_range(self, {"pool_size": (4, 200), "lease_seconds": (5, 3600)})
        if self.url and (problem := url_problem(self.url)):
            found.append(f"url: {problem}")
        return found

    def database(self, env: Mapping[str, str]) -> str:
        """The PostgreSQL URL in force ("" for the files); a bad DRAFTDESK_DATABASE_URL raises
        ConfigError (its password masked)."""
        url = effective_url(self.url, env)
        if url and url != self.url.strip() and (problem := url_problem(url)):
            raise ConfigError([f"DRAFTDESK_DATABASE_URL: {problem}"])
        return url


@dataclass(frozen=True)
class Database:
    """Where a PostgreSQL store lives and how to hold it (``url`` may carry a password: never log it)."""

    url: str = field(repr=False)
    pool_size: int = 8
    lease_seconds: int = 60


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
    engine: EngineSettings = field(default_factory=EngineSettings)  # `[engine]`: local batching limits
    promotion: PromotionSettings = field(default_factory=PromotionSettings)
    grounding: GroundingSettings = field(default_factory=GroundingSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    languages: LanguageSettings = field(default_factory=LanguageSettings)
    database: Database | None = None  # `[storage] url` (or DRAFTDESK_DATABASE_URL): PostgreSQL, not files


@dataclass(frozen=True)
class StoreSettings:
    """What `report`, `votes export` and `digest --preview` read: the store, the models, the digest."""

    storage_path: Path
    models: tuple[ModelSpec, ...]
    digest: DigestSettings = field(default_factory=DigestSettings)
    promotion: PromotionSettings = field(default_factory=PromotionSettings)
    languages: LanguageSettings = field(default_factory=LanguageSettings)
    database: Database | None = None


def _database(storage: StorageSettings, env: Mapping[str, str], problems: list[str]) -> Database | None:
    try:
        url = storage.database(env)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    return Database(url, storage.pool_size, storage.lease_seconds) if url else None


def load_settings(path: Path, env: Mapping[str, str] | None = None, *, need_secrets: bool = True) -> Settings:
    env = os.environ if env is None else env
    raw = read_toml(path)
    return parse_settings(raw, env, base_dir=path.parent.resolve(), need_secrets=need_secrets, source=path)


def load_store_settings(path: Path, env: Mapping[str, str] | None = None) -> StoreSettings:
    """Only `[storage]` and `[[models]]`: reading the votes needs no Slack, Zendesk or secrets."""
    raw = read_toml(path)
    problems: list[str] = []
    storage = build_section(StorageSettings, raw.get("storage"), "storage", problems)
    database = _database(storage, os.environ if env is None else env, problems)
    models = parse_models(raw.get("models"), path.parent, problems)
    digest = build_section(DigestSettings, raw.get("digest"), "digest", problems)
    promotion = build_section(PromotionSettings, raw.get("promotion"), "promotion", problems)
    languages = build_section(LanguageSettings, raw.get("languages"), "languages", problems)
    if problems:
        raise ConfigError(problems)
    return StoreSettings(
        storage.resolved(path.parent.resolve()), models, digest, promotion, languages, database
    )


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
    known = sorted(BOT_SECTIONS + OTHER_SECTIONS)
    for name in sorted(set(raw) - set(known)):
        problems.append(f"[{name}]: unknown section (known: {', '.join(known)})")

    slack_default = SlackSettings(mode="socket" if secrets.slack_app_token else "http")
    slack = build_section(SlackSettings, raw.get("slack"), "slack", problems, base=slack_default)
    server = build_section(ServerSettings, raw.get("server"), "server", problems)
    health = build_section(HealthSettings, raw.get("health"), "health", problems)
    zendesk = build_section(ZendeskSettings, raw.get("zendesk"), "zendesk", problems)
    intake = build_section(IntakeSettings, raw.get("intake"), "intake", problems)
    worker = build_section(WorkerSettings, raw.get("worker"), "worker", problems)
    digest = build_section(DigestSettings, raw.get("digest"), "digest", problems)
    storage = build_section(StorageSettings, raw.get("storage"), "storage", problems)
    database = _database(storage, env, problems)
    grounding = build_section(GroundingSettings, raw.get("grounding"), "grounding", problems).resolved(
        base_dir
    )
    models = parse_models(raw.get("models"), base_dir, problems)
    engine = parse_engine(raw.get("engine"), problems)
    promotion = build_section(PromotionSettings, raw.get("promotion"), "promotion", problems)
    languages = build_section(LanguageSettings, raw.get("languages"), "languages", problems)
    if digest.enabled and not digest.channel and not digest.users:
        digest = replace(digest, channel=slack.channel)  # default: the drafts channel
    names = [m.name for m in models]
    if digest.baseline and models and digest.baseline not in names:
        problems.append(
            f"digest.baseline: no [[models]] entry named {digest.baseline!r} (models: {', '.join(names)})"
        )
    problems.extend(_languages_not_detected(models, languages))
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
        storage.resolved(base_dir),
        models,
        secrets,
        source,
        engine=engine,
        promotion=promotion,
        grounding=grounding,
        health=health,
        languages=languages,
        database=database,
    )


def _languages_not_detected(models: tuple[ModelSpec, ...], languages: LanguageSettings) -> list[str]:
    """A model's language the detector is not asked to choose: its tickets could only come by locale."""
    if not languages.detect:
        return []
    return [
        f"models[{i}].languages: {code!r} is not in [languages] detect {list(languages.detect)!r}: "
        "add it there, or the detector never picks it"
        for i, model in enumerate(models)
        for code in model.languages
        if code not in languages.detect
    ]


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
