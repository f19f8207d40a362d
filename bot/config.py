"""Settings from `config.toml` and secrets from the environment, validated as a whole.

Every problem in the file is collected and reported together, one line each, naming the key
and what to put there, so a user fixes the file in one pass rather than one error at a time.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.spec import BACKENDS, EngineSettings, ModelSpec

CONFIG_ENV = "DRAFTDESK_CONFIG"
SECRET_ENV_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "ZENDESK_EMAIL",
    "ZENDESK_API_TOKEN",
    "ZENDESK_WEBHOOK_SECRET",
)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(Exception):
    """Raised with every problem found; `str()` gives one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Secrets:
    slack_bot_token: str | None
    slack_signing_secret: str | None
    slack_app_token: str | None
    zendesk_email: str | None
    zendesk_api_token: str | None
    zendesk_webhook_secret: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Secrets:
        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        return cls(*(get(name) for name in SECRET_ENV_VARS))

    def __repr__(self) -> str:  # never print secrets, even in a traceback or a debug log
        present = [n for n, v in zip(SECRET_ENV_VARS, self.__dict__.values(), strict=True) if v]
        return f"Secrets(set={present})"


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
class ZendeskSettings:
    url: str
    subdomain: str | None = None


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


def resolve_config_path(cli_path: str | None, env: Mapping[str, str]) -> Path:
    """`--config` wins, then `DRAFTDESK_CONFIG`, then `./config.toml`."""
    return Path(cli_path or env.get(CONFIG_ENV) or "config.toml")


def load_settings(path: Path, env: Mapping[str, str] | None = None, *, need_secrets: bool = True) -> Settings:
    env = os.environ if env is None else env
    if not path.is_file():
        raise ConfigError(
            [f"config file {path} not found: pass --config PATH or set {CONFIG_ENV} (see config.toml)"]
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return parse_settings(raw, env, base_dir=path.parent, need_secrets=need_secrets, source=path)


class _Reader:
    """Reads typed values from one TOML table, recording problems instead of raising."""

    def __init__(self, table: Any, prefix: str, problems: list[str]) -> None:
        self.prefix = prefix
        self.problems = problems
        if table is None:
            table = {}
        if not isinstance(table, dict):
            problems.append(f"[{prefix}] must be a table")
            table = {}
        self.table: dict[str, Any] = table

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self.key(name)}: {message}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any, hint: str) -> Any:
        if name not in self.table:
            return default
        value = self.table[name]
        if (
            isinstance(value, bool)
            and kind is not bool
            and bool not in (kind if isinstance(kind, tuple) else ())
        ):
            self.problem(name, f"expected {hint}, got {value!r}")
            return default
        if not isinstance(value, kind):
            self.problem(name, f"expected {hint}, got {value!r}")
            return default
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default, " or ".join(f'"{o}"' for o in options))
        if value not in options:
            self.problem(name, f"must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float, integer: bool) -> Any:
        kind: type | tuple[type, ...] = int if integer else (int, float)
        hint = "an integer" if integer else "a number"
        value = self.get(name, kind, default, hint)
        if not minimum <= value <= maximum:
            self.problem(name, f"must be between {minimum} and {maximum}, got {value!r}")
            return default
        return value

    def unknown_keys(self, known: set[str]) -> None:
        for name in sorted(set(self.table) - known):
            self.problem(name, f"unknown setting (known: {', '.join(sorted(known))})")


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

    slack = _parse_slack(_Reader(raw.get("slack"), "slack", problems), secrets)
    server = _parse_server(_Reader(raw.get("server"), "server", problems))
    zendesk = _parse_zendesk(_Reader(raw.get("zendesk"), "zendesk", problems))
    intake = _parse_intake(_Reader(raw.get("intake"), "intake", problems))
    worker = _parse_worker(_Reader(raw.get("worker"), "worker", problems))
    digest = _parse_digest(_Reader(raw.get("digest"), "digest", problems))
    storage = _Reader(raw.get("storage"), "storage", problems)
    storage.unknown_keys({"path"})
    storage_path = Path(storage.get("path", str, ".draftdesk/draftdesk.json", "a file path"))
    if not storage_path.is_absolute():
        storage_path = base_dir / storage_path
    models = _parse_models(raw.get("models"), base_dir, problems)
    engine = _parse_engine(_Reader(raw.get("engine"), "engine", problems))
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


def _parse_slack(r: _Reader, secrets: Secrets) -> SlackSettings:
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


def _parse_server(r: _Reader) -> ServerSettings:
    r.unknown_keys({"host", "port", "max_body_bytes", "health_check"})
    return ServerSettings(
        host=r.get("host", str, "0.0.0.0", "a host name or address"),
        port=r.number("port", 3000, minimum=0, maximum=65535, integer=True),
        max_body_bytes=r.number("max_body_bytes", 2_000_000, minimum=1024, maximum=100_000_000, integer=True),
        health_check=r.get("health_check", bool, False, "true or false"),
    )


def _parse_zendesk(r: _Reader) -> ZendeskSettings:
    r.unknown_keys({"subdomain", "url"})
    subdomain = r.get("subdomain", str, None, 'your Zendesk subdomain, e.g. "acme"') or None
    url = r.get("url", str, None, "a URL") or None
    if url is None and subdomain:
        url = f"https://{subdomain}.zendesk.com"
    if url is None:
        r.problem("subdomain", 'missing: set subdomain = "acme" (for acme.zendesk.com) or url = "https://…"')
        url = ""
    elif not url.startswith(("http://", "https://")):
        r.problem("url", f"must start with http:// or https://, got {url!r}")
    return ZendeskSettings(url=url.rstrip("/"), subdomain=subdomain)


def _parse_intake(r: _Reader) -> IntakeSettings:
    r.unknown_keys({"mode", "poll_interval_seconds", "poll_since"})
    mode = r.choice("mode", ("webhook", "poll", "both"), "webhook")
    interval = r.number("poll_interval_seconds", 60, minimum=10, maximum=86_400, integer=True)
    since_raw = r.table.get("poll_since")
    since: datetime | None = None
    if since_raw is not None:
        since = _parse_since(since_raw)
        if since is None:
            r.problem("poll_since", f'expected an ISO date like "2024-01-31" or omit it, got {since_raw!r}')
    return IntakeSettings(mode=mode, poll_interval_seconds=interval, poll_since=since)


def _parse_since(value: Any) -> datetime | None:
    from datetime import UTC, date

    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _parse_worker(r: _Reader) -> WorkerSettings:
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


def _parse_digest(r: _Reader) -> DigestSettings:
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


_MODEL_KEYS = {
    "finetune",
    "name",
    "base_model",
    "adapter",
    "quantization",
    "max_new_tokens",
    "temperature",
    "top_p",
    "repetition_penalty",
    "stop",
    "max_input_tokens",
    "seed",
    # where the model runs: "local" (this process) or "openai" (vLLM, `draftdesk serve-models`)
    "backend",
    "base_url",
    "model",
    "api_key_env",
    "timeout_seconds",
    "max_retries",
    "tokenizer",
}
_REMOTE_KEYS = ("base_url", "model", "api_key_env", "timeout_seconds", "max_retries", "tokenizer")


def _parse_models(raw: Any, base_dir: Path, problems: list[str]) -> tuple[ModelSpec, ...]:
    if not raw:
        problems.append("[[models]]: missing: add at least one [[models]] table with name and base_model")
        return ()
    if not isinstance(raw, list):
        problems.append("[[models]]: must be an array of tables ([[models]])")
        return ()
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        r = _Reader(table, f"models[{index}]", problems)
        r.unknown_keys(_MODEL_KEYS)
        name = r.get("name", str, "", "a short model name")
        if not name:
            r.problem("name", 'missing: give each model a name, e.g. name = "llama2-7b-ft"')
        elif name in seen:
            r.problem("name", f"duplicate model name {name!r}: names must be unique")
        seen.add(name)
        backend = r.choice("backend", BACKENDS, "local")
        base = r.get("base_model", str, "", "a hub id or a local path")
        if not base and backend == "local":
            r.problem("base_model", 'missing: a hub id like "meta-llama/Llama-2-7b-hf" or a local path')
        remote = _parse_remote(r, backend)
        adapter = r.get("adapter", str, None, "a LoRA adapter directory") or None
        stop = r.get("stop", list, [], 'a list of strings like ["\\nCustomer:"]')
        if not all(isinstance(s, str) and s for s in stop):
            r.problem("stop", "must be a list of non-empty strings")
            stop = []
        max_input = r.table.get("max_input_tokens")
        seed = r.table.get("seed")
        if not name or (not base and backend == "local") or remote is None:
            continue  # already reported; a spec needs both
        try:
            spec = ModelSpec(
                name=name,
                base_model=_local_or_hub(base, base_dir) if base else "",
                adapter=_local_or_hub(adapter, base_dir) if adapter else None,
                quantization=r.choice("quantization", ("nf4", "none"), "nf4"),  # type: ignore[arg-type]
                max_new_tokens=r.number("max_new_tokens", 256, minimum=1, maximum=8192, integer=True),
                temperature=float(r.number("temperature", 0.7, minimum=0, maximum=5, integer=False)),
                top_p=float(r.number("top_p", 0.9, minimum=0.01, maximum=1, integer=False)),
                repetition_penalty=float(
                    r.number("repetition_penalty", 1.1, minimum=0.5, maximum=3, integer=False)
                ),
                stop=tuple(stop),
                max_input_tokens=r.number("max_input_tokens", 0, minimum=16, maximum=1_000_000, integer=True)
                if max_input is not None
                else None,
                seed=r.number("seed", 0, minimum=0, maximum=2**31, integer=True)
                if seed is not None
                else None,
                backend=backend,  # type: ignore[arg-type]
                **remote,
            )
        except ValueError as exc:  # a combination the checks above missed: report, never raise
            problems.append(f"models[{index}]: {exc}")
            continue
        specs.append(spec)
    return tuple(specs)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _parse_remote(r: _Reader, backend: str) -> dict[str, Any] | None:
    """The `backend = "openai"` keys of one model, or None after reporting a problem."""
    if backend != "openai":
        for key in _REMOTE_KEYS:
            if key in r.table:
                r.problem(key, 'only used with backend = "openai": remove it, or set backend = "openai"')
        return {}
    before = len(r.problems)
    base_url = r.get("base_url", str, "", 'a URL like "http://gpu-box:8000/v1"')
    if not base_url.startswith(("http://", "https://")):
        r.problem("base_url", f'backend "openai" needs base_url = "http://host:port/v1", got {base_url!r}')
    api_key_env = r.get("api_key_env", str, None, "an environment variable name")
    if api_key_env is not None and not _ENV_NAME.fullmatch(api_key_env):
        # Never echo the value: it may be the key itself, pasted here by mistake.
        r.problem("api_key_env", "must be the NAME of an environment variable holding the key, not the key")
    remote = {
        "base_url": base_url,
        "remote_model": r.get("model", str, None, "the model id on the server") or None,
        "api_key_env": api_key_env,
        "timeout_seconds": float(r.number("timeout_seconds", 120, minimum=1, maximum=3600, integer=False)),
        "max_retries": r.number("max_retries", 3, minimum=0, maximum=20, integer=True),
        "tokenizer": r.get("tokenizer", str, None, "a tokenizer path or hub id") or None,
    }
    return None if len(r.problems) > before else remote


def _parse_engine(r: _Reader) -> EngineSettings:
    r.unknown_keys({"max_batch_size", "max_batch_tokens", "max_wait_seconds", "device"})
    device = r.get("device", str, None, '"cuda", "cuda:1" or "cpu"') or None
    if device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        r.problem("device", f'must be "cpu", "cuda" or "cuda:N", got {device!r}')
        device = None
    return EngineSettings(
        max_batch_size=r.number("max_batch_size", 32, minimum=1, maximum=1024, integer=True),
        max_batch_tokens=r.number("max_batch_tokens", 32768, minimum=64, maximum=10_000_000, integer=True),
        max_wait_seconds=float(r.number("max_wait_seconds", 0.05, minimum=0, maximum=60, integer=False)),
        device=device,
    )


def load_model_settings(path: Path) -> tuple[tuple[ModelSpec, ...], EngineSettings]:
    """Only `[[models]]` and `[engine]` (`draftdesk serve-models` on a GPU box needs no Slack)."""
    if not path.is_file():
        raise ConfigError([f"config file {path} not found: pass --config PATH or set {CONFIG_ENV}"])
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    problems: list[str] = []
    models = _parse_models(raw.get("models"), path.parent, problems)
    engine = _parse_engine(_Reader(raw.get("engine"), "engine", problems))
    if problems:
        raise ConfigError(problems)
    return models, engine


def _local_or_hub(value: str, base_dir: Path) -> str:
    """Relative paths that look local are resolved against the config file's folder."""
    if value.startswith(("./", "../", "/", "~")):
        return str((base_dir / Path(value).expanduser()).resolve())
    return value


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
