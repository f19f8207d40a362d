"""The `[zendesk]` section: which Zendesk to talk to (the bot and `finetune export` both need it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.config import setting

_SUBDOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


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
        if self.subdomain and not _SUBDOMAIN.fullmatch(self.subdomain):
            return [
                f'subdomain: write only the name, e.g. "acme" for acme.zendesk.com, got {self.subdomain!r} '
                '(for a Zendesk on its own domain, set url = "https://support.example.com" instead)'
            ]
        try:
            split_zendesk_url(self.url)
        except ValueError as exc:
            return [f"url: {exc}"]
        return []


def split_zendesk_url(url: str) -> tuple[str, str]:
    """(scheme, netloc) of a Zendesk base URL, checked."""
    parts = urlsplit(url.strip())
    example = "https://acme.zendesk.com"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the Zendesk url must look like {example}, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"the Zendesk url must be just the site, like {example} (no path), got {url!r}")
    if "." not in parts.hostname:
        # zenpy needs a subdomain and a domain: use 127.0.0.1 rather than localhost.
        raise ValueError(f"the Zendesk url needs a dotted host name like {example}, got {url!r}")
    return parts.scheme, parts.netloc
