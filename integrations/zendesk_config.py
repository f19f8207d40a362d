"""The `[zendesk]` section: which Zendesk to talk to (the bot and `finetune export` both need it)."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import setting


@dataclass(frozen=True)
class ZendeskSettings:
    """`[zendesk]`: the Zendesk whose tickets get drafts (credentials come from the environment)."""

    url: str = setting(
        'the Zendesk URL, e.g. "https://support.example.com"',
        "",
        shown_default="https://SUBDOMAIN.zendesk.com",
    )
    subdomain: str | None = setting('your Zendesk subdomain, e.g. "acme" for acme.zendesk.com', None)
    allow_public_replies: bool = setting(
        "the send dialog offers a public reply (the customer gets it) beside the internal note", False
    )

    def __post_init__(self) -> None:
        url = self.url or (f"https://{self.subdomain}.zendesk.com" if self.subdomain else "")
        object.__setattr__(self, "url", url.rstrip("/"))

    def problems(self) -> list[str]:
        if not self.url:
            return ['subdomain: missing: set subdomain = "acme" (for acme.zendesk.com) or url = "https://…"']
        if not self.url.startswith(("http://", "https://")):
            return [f"url: must start with http:// or https://, got {self.url!r}"]
        return []
