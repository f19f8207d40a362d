"""`draftdesk doctor`: the start-up checks of `draftdesk run`, as a checklist, without starting.

Each check says what it found and, when something is wrong, what to do. The exit status is 1 when
any check fails, so the command can gate a deployment. Nothing is posted, queued or loaded: model
checks look at the files only (the base in a local folder or the Hugging Face cache, the adapter).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.config import Settings, load_settings
from core.config import ConfigError

if TYPE_CHECKING:
    from integrations.zendesk import ZendeskGateway

OK, WARN, FAIL = "ok", "warning", "fail"
MARKS = {OK: "✔", WARN: "!", FAIL: "✘"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str  # what was found, or what to do


def run_checks(config_path: Path, env: dict[str, str] | None = None) -> list[Check]:
    """Every check, in the order `draftdesk run` meets them; configuration problems stop the rest."""
    env = dict(os.environ) if env is None else env
    try:
        settings = load_settings(config_path, env)
    except ConfigError as exc:
        return [Check("configuration", FAIL, problem) for problem in exc.problems]
    checks = [Check("configuration", OK, f"{config_path.resolve()}: every setting valid, secrets set")]
    # `draftdesk run` reads the Help Center once, as it starts (`draftdesk.app`): not among its checks.
    return [*checks, *check_settings(settings), _guarded(_help_center_links, settings)]


def check_settings(settings: Settings) -> list[Check]:
    """The checks after the configuration: Slack, Zendesk, the model files. `draftdesk run` makes
    them before loading anything."""
    checks = [
        _guarded(check, settings) for check in (_slack_token, _slack_channel, _socket_mode, _zendesk_user)
    ]
    if settings.database is not None:
        checks.append(_guarded(_database, settings))
    checks.extend(_models(settings))
    return checks


def _database(settings: Settings) -> Check:
    """`[storage] url`: the server answers, and how far its schema is (nothing is changed here)."""
    import psycopg

    from bot.store.pg.schema import migrations, schema_version
    from core.db_url import masked

    assert settings.database is not None
    url = settings.database.url
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            server = conn.info.server_version
            version = schema_version(conn)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("database", FAIL, f"{masked(url)}: {first}")
    newest = migrations()[-1].version
    where = f"{masked(url)}: PostgreSQL {server // 10000}.{server % 10000}"
    if version == 0:
        return Check("database", OK, f"{where}, empty: `draftdesk run` creates the schema")
    state = (
        "current" if version == newest else ("newer than this draftdesk" if version > newest else "behind")
    )
    return Check("database", OK, f"{where}, schema {version} of {newest} ({state})")


def _guarded(check: Callable[[Settings], Check], settings: Settings) -> Check:
    try:
        return check(settings)
    except Exception as exc:  # a check must report, never crash the checklist
        return Check(check.__name__.strip("_").replace("_", " "), FAIL, f"{type(exc).__name__}: {exc}")


def _client(settings: Settings):
    from integrations.slack import make_web_client

    return make_web_client(settings.secrets.slack_bot_token or "", settings.slack.api_url, max_retries=1)


def _slack_unreachable(exc: Exception) -> bool:
    from slack_sdk.errors import SlackApiError

    return not isinstance(exc, SlackApiError)


_SLACK_SERVER_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "ratelimited"})


def _slack_server_trouble(exc: Exception) -> bool:
    """Slack answered, with an outage (HTTP 5xx) or a rate limit: nothing the token can fix."""
    from slack_sdk.errors import SlackApiError

    if not isinstance(exc, SlackApiError):
        return False
    status = getattr(exc.response, "status_code", 200) or 200
    return status >= 500 or str(exc.response.get("error", "")) in _SLACK_SERVER_ERRORS


def _slack_error(exc: Exception) -> str:
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown_error"))
    return f"could not reach Slack ({type(exc).__name__})"


def _slack_token(settings: Settings) -> Check:
    try:
        auth = _client(settings).auth_test()
    except Exception as exc:
        if _slack_unreachable(exc):
            fix = "check this machine's network, proxy (HTTPS_PROXY) and firewall to slack.com"
        elif _slack_server_trouble(exc):
            fix = "Slack's side, not the token: try again later (status.slack.com)"
        else:
            fix = "check SLACK_BOT_TOKEN: the Bot User OAuth Token (xoxb-…) of the installed app"
        return Check("Slack bot token", FAIL, f"{_slack_error(exc)}: {fix}")
    return Check("Slack bot token", OK, f"signed in as {auth.get('user')} in {auth.get('team')}")


def _slack_channel(settings: Settings) -> Check:
    channel = settings.slack.channel
    try:
        info = _client(settings).conversations_info(channel=channel)
    except Exception as exc:
        error = _slack_error(exc)
        if error == "missing_scope":
            return Check("Slack channel", WARN, f"{channel}: not checked (the app lacks channels:read)")
        if _slack_unreachable(exc):
            return Check("Slack channel", FAIL, f"{channel}: not checked: {error}")
        fix = "set [slack] channel to the channel's ID (channel details → bottom) and invite the bot"
        return Check("Slack channel", FAIL, f"{channel}: {error}: {fix}")
    if not info["channel"].get("is_member"):
        return Check("Slack channel", FAIL, f"{channel}: the bot is not in it: /invite @your-bot there")
    return Check("Slack channel", OK, f"{channel}: the bot is a member")


def _socket_mode(settings: Settings) -> Check:
    if settings.slack.mode != "socket":
        return Check("Slack Socket Mode", OK, "not used (HTTP mode: Slack calls /slack/events)")
    from integrations.slack import make_web_client

    token = settings.secrets.slack_app_token or ""
    client = make_web_client(token, settings.slack.api_url, max_retries=1)
    try:
        client.apps_connections_open(app_token=token)
    except Exception as exc:
        fix = "SLACK_APP_TOKEN must be an app-level token (xapp-…, connections:write), Socket Mode enabled"
        return Check("Slack Socket Mode", FAIL, f"{_slack_error(exc)}: {fix}")
    return Check("Slack Socket Mode", OK, "the app-level token opens a connection")


def _gateway(settings: Settings) -> ZendeskGateway:
    from integrations.zendesk import RetryPolicy, ZendeskGateway

    secrets = settings.secrets
    return ZendeskGateway.from_settings(  # a check answers in seconds: one retry, short waits
        settings.zendesk.url,
        secrets.zendesk_email or "",
        secrets.zendesk_api_token or "",
        timeout=10,
        retry=RetryPolicy(max_retries=1, fallback_wait=5, max_wait=10),
    )


def _zendesk_user(settings: Settings) -> Check:
    from integrations.zendesk import ZendeskAccessDenied, ZendeskError

    gateway = _gateway(settings)
    try:
        user = gateway.api_user()
    except ZendeskAccessDenied as exc:
        return Check("Zendesk API user", FAIL, str(exc))
    except ZendeskError as exc:  # down or rate-limited now: webhooks still queue, the worker retries
        return Check("Zendesk API user", WARN, f"not checked: {exc}; the worker retries once Zendesk is back")
    if not user.id:
        return Check(
            "Zendesk API user", FAIL, "signed in as anonymous: check ZENDESK_EMAIL and ZENDESK_API_TOKEN"
        )
    if user.role not in ("agent", "admin"):
        return Check("Zendesk API user", FAIL, f"{user.email} is an {user.role}: use an agent or admin")
    return Check("Zendesk API user", OK, f"{user.email or user.id} ({user.role}) at {settings.zendesk.url}")


def _help_center_links(settings: Settings) -> Check:
    """The links under each ticket, on or off, and why: the decision `draftdesk run` makes at start."""
    from bot.drafting.grounding import help_center_links

    grounding = settings.grounding
    links = help_center_links(
        grounding.enabled, grounding.locales, _gateway(settings).help_center_article_count
    )
    return Check(
        "Help Center links", OK if links.checked else WARN, f"{'on' if links.on else 'off'}: {links.why}"
    )


def _models(settings: Settings) -> Iterator[Check]:
    from models.spec import resolve_adapter_dir
    from models.versions import candidate_problem

    for spec in settings.models:
        name = f"model {spec.name}"
        if spec.backend != "local":
            yield Check(name, OK, f"served at {spec.base_url} (not checked here)")
            continue
        problems = [problem for problem in [base_model_problem(spec.base_model)] if problem]
        if spec.adapter and not (resolve_adapter_dir(spec.adapter) / "adapter_config.json").is_file():
            fix = "train it (`draftdesk finetune train`) or remove `adapter` for the untuned base"
            problems.append(f"adapter {spec.adapter}: no trained adapter there: {fix}")
        if candidate := candidate_problem(spec):
            problems.append(candidate)
        if problems:
            yield Check(name, FAIL, "; ".join(problems))
        else:
            yield Check(
                name, OK, f"base {spec.base_model}" + (f", adapter {spec.adapter}" if spec.adapter else "")
            )


def base_model_problem(base_model: str) -> str | None:
    """What stops ``base_model`` (a local folder or a hub id) from loading, with the fix; None if nothing."""
    from models.base_files import missing_base_files
    from models.engine import hub_model_downloaded, looks_like_path

    if not looks_like_path(base_model):
        if hub_model_downloaded(base_model):
            return None
        return (
            f"base {base_model}: not downloaded on this machine: `hf download {base_model}` "
            "(README, Install on a GPU box), or set base_model to the folder that holds it"
        )
    folder = Path(base_model).expanduser()
    missing = missing_base_files(folder)
    if not missing:
        return None
    if missing == ["the folder itself"]:
        return (
            f"base {folder}: no such folder: download the model into it (`hf download HUB_ID "
            "--local-dir` it, README) or set base_model to the folder that holds it"
        )
    return (
        f"base {folder}: incomplete, it lacks {', '.join(missing)}: the download stopped part way; "
        "run the same `hf download … --local-dir` again (it resumes)"
    )


def slack_token_check(settings: Settings) -> Check:
    """The Slack check of GET /healthz: the bot token, with `auth.test`."""
    return _guarded(_slack_token, settings)


def zendesk_user_check(settings: Settings) -> Check:
    """The Zendesk check of GET /healthz: the API user, with `users/me`."""
    return _guarded(_zendesk_user, settings)


def print_checklist(checks: list[Check], out: TextIO = sys.stdout) -> int:
    """The checklist, one line a check; returns the exit status (1 if any check failed)."""
    for check in checks:
        print(f"{MARKS[check.status]} {check.name}: {check.detail}", file=out)
    failed = sum(check.status == FAIL for check in checks)
    print(f"\n{'all checks passed' if not failed else f'{failed} problem(s) to fix'}", file=out)
    return 1 if failed else 0
