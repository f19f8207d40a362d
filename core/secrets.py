"""Secrets come from the environment only, and never show in a repr, a log or a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SECRET_ENV_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "ZENDESK_EMAIL",
    "ZENDESK_API_TOKEN",
    "ZENDESK_WEBHOOK_SECRET",
)


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
