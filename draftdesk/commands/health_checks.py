"""The upstream checks of GET /healthz: Slack's bot token, the Zendesk API user, the models.

Slack and Zendesk are checked as `draftdesk doctor` checks them; a model in this process is healthy
once loaded (start-up fails otherwise), a model on a server when the server lists it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bot.config import Settings
from bot.operations.health import Check
from draftdesk.commands.doctor import OK, slack_token_check, zendesk_user_check
from models.openai_backend import server_problem


def upstream_checks(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Check]:
    env = os.environ if env is None else env

    def slack() -> tuple[bool, str]:
        check = slack_token_check(settings)
        return check.status == OK, check.detail

    def zendesk() -> tuple[bool, str]:
        check = zendesk_user_check(settings)
        return check.status == OK, check.detail

    def models() -> tuple[bool, str]:
        timeout = 5.0
        problems, found = [], []
        for spec in settings.models:
            if spec.backend == "local":
                found.append(f"{spec.name}: loaded")
            elif problem := server_problem(spec, env, timeout):
                problems.append(f"{spec.name}: {problem}")
            else:
                found.append(f"{spec.name}: served at {spec.base_url}")
        return not problems, "; ".join(problems or found)

    return {"slack": slack, "zendesk": zendesk, "models": models}
