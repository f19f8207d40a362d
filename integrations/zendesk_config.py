"""The `[zendesk]` section: which Zendesk to talk to (the bot and `finetune export` both need it)."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import TableReader


@dataclass(frozen=True)
class ZendeskSettings:
    url: str
    subdomain: str | None = None


def parse_zendesk(r: TableReader) -> ZendeskSettings:
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
