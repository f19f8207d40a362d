"""Database URLs (``[storage] url``): which ones are accepted, and how they appear in logs.

A URL may carry a password (``postgresql://user:secret@host/db``); only ``masked`` ever reaches a
log line or an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

SCHEMES = ("postgresql", "postgres")
ENV_VAR = "DRAFTDESK_DATABASE_URL"
_PASSWORD = re.compile(r"^(?P<head>[a-z]+://[^:/@?#]*):[^@/?#]*@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def masked(url: str) -> str:
    """The URL with any password replaced by ``***`` (in the user part and in ``?password=``)."""
    url = _PASSWORD.sub(r"\g<head>:***@", url)
    return _QUERY_PASSWORD.sub(r"\g<key>***", url)


def url_problem(url: str) -> str:
    """Why ``url`` is not a PostgreSQL URL we can use; "" when it is."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in SCHEMES:
        return f"must start with postgresql:// (got {masked(url)!r})"
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        return f"names no database: add /DBNAME after the host (got {masked(url)!r})"
    return ""


def effective_url(configured: str, env: Mapping[str, str] | None) -> str:
    """``DRAFTDESK_DATABASE_URL`` when set (a password belongs there, not in config.toml), else
    ``[storage] url``; "" means the TinyDB files."""
    from_env = (env or {}).get(ENV_VAR, "").strip()
    return from_env or configured.strip()
