"""The Zendesk edge: read tickets, add internal notes, follow the incremental export. Via zenpy.

How zenpy is pointed at a base URL. zenpy builds every URL as
``{protocol}://{subdomain}.{domain}/api/v2/…`` with ``protocol`` fixed to ``https`` (only the
process-wide ``ZENPY_FORCE_SCHEME`` variable changes it), and it deserializes a response only
when ``subdomain.domain`` occurs in the request URL. So the host of the configured URL is split at
its first dot (``acme`` + ``zendesk.com``; ``127`` + ``0.0.1:8080`` for a loopback server), and
for an ``http://`` URL our own ``requests`` session swaps the scheme of zenpy's URLs before
sending. No environment variable is touched, so two gateways with different URLs can coexist.

Rate limits and server errors. zenpy on its own waits out a 429 only when it carries
``Retry-After`` (with an uncapped ``time.sleep(1)`` loop) and fails on a 429 without one; the
urllib3 retries it mounts apply only to a session it creates itself. The session here does the
retrying instead, with an injectable ``sleep``: a 429 waits ``Retry-After`` seconds (60 when the
header is missing, capped at ``RetryPolicy.max_wait``); a 5xx on a GET waits with exponential
backoff. A 5xx on a write is not retried: the note may have been added already, and a retry
could post it twice. zenpy gets ``ratelimit_budget=0`` so it never sleeps by itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment as ZenpyComment
from zenpy.lib.api_objects import Ticket as ZenpyTicket
from zenpy.lib.exception import APIException, RecordNotFoundException, ZenpyException

from core import ports
from core.domain import Agent, Comment, Ticket, TicketChange
from integrations.zendesk_config import split_zendesk_url

log = logging.getLogger(__name__)

_RETRYABLE_5XX = frozenset({500, 502, 503, 504})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ZendeskError(ports.GatewayError):
    """Base class of the errors this module raises. ``status``: the HTTP status Zendesk answered
    (``"429"``), or ``"unreachable"``."""

    status: str | None = None


class TicketNotFound(ZendeskError, ports.TicketNotFound):
    """The ticket does not exist (any more): deleted, merged away, or a wrong id."""


class ZendeskUnavailable(ZendeskError, ports.UpstreamUnavailable):
    """Zendesk could not be used: wrong credentials or URL, rate limits, outage. Says what to check."""


class ZendeskAccessDenied(ZendeskUnavailable):
    """Zendesk answered 401 or 403: the credentials or the API user's role are wrong, not the network."""


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5  # per request, 429s and 5xx together
    fallback_wait: float = 60.0  # a 429 without Retry-After
    max_wait: float = 300.0  # cap on one wait, whatever Retry-After says
    backoff_initial: float = 2.0  # 5xx: 2, 4, 8, … seconds
    backoff_max: float = 60.0


class RetriesExhausted(requests.RequestException):
    """Still 429 or 5xx after ``RetryPolicy.max_retries`` retries."""


# -- what the finetune export reads (Help Center articles, solved tickets, users) -------------


@dataclass(frozen=True)
class HelpCenterArticle:
    """A Help Center article in one locale; ``body`` is HTML, as Zendesk stores it."""

    id: int
    title: str
    body: str
    locale: str
    url: str
    updated_at: str
    draft: bool = False
    section_id: int | None = None


@dataclass(frozen=True)
class ExportedTicket:
    """One row of the incremental ticket export, with the fields the training export keeps."""

    id: int
    subject: str
    status: str
    requester_id: int
    assignee_id: int | None
    created_at: str
    updated_at: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportedComment:
    """A ticket comment as Zendesk returns it: public replies and internal notes alike."""

    id: int
    author_id: int
    body: str
    html_body: str
    public: bool
    created_at: str


@dataclass(frozen=True)
class ZendeskUser:
    id: int
    name: str
    email: str
    role: str  # "end-user", "agent" or "admin"
    locale: str = ""  # the language Zendesk writes to them in, e.g. "de" or "en-US"


class _ZendeskSession(requests.Session):
    """A requests session that fixes the scheme of zenpy's URLs and retries 429s and 5xx."""

    def __init__(self, scheme: str, netloc: str, policy: RetryPolicy, sleep: Callable[[float], None]) -> None:
        super().__init__()
        self._zenpy_prefix = f"https://{netloc}/"
        self._real_prefix = f"{scheme}://{netloc}/"
        self.policy = policy
        self.sleep = sleep

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = str(url)
        if url.startswith(self._zenpy_prefix):
            url = self._real_prefix + url[len(self._zenpy_prefix) :]
        verb = method.decode() if isinstance(method, bytes) else method
        retries = 0
        while True:
            response = super().request(verb, url, *args, **kwargs)
            wait = self._wait_before_retry(verb.upper(), response, retries)
            if wait is None:
                return response
            if retries >= self.policy.max_retries:
                raise RetriesExhausted(
                    f"HTTP {response.status_code} from {verb} {urlsplit(url).path} after {retries} retries",
                    response=response,
                )
            response.close()
            retries += 1
            log.warning(
                "Zendesk answered HTTP %s to %s %s: retry %s/%s in %.0fs",
                response.status_code,
                verb,
                urlsplit(url).path,
                retries,
                self.policy.max_retries,
                wait,
            )
            self.sleep(wait)

    def _wait_before_retry(self, method: str, response: requests.Response, retries: int) -> float | None:
        """Seconds to wait before retrying, or None when this response is final."""
        status = response.status_code
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429:
            wait = self.policy.fallback_wait if retry_after is None else retry_after
        elif status in _RETRYABLE_5XX and method in _SAFE_METHODS:
            backoff = self.policy.backoff_initial * 2**retries
            wait = min(self.policy.backoff_max, backoff) if retry_after is None else retry_after
        else:
            return None
        return max(0.0, min(wait, self.policy.max_wait))


def _normalized(text: str) -> str:
    """Text compared whitespace aside: Zendesk may re-wrap or trim a comment's body."""
    return " ".join(text.split())


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: Zendesk sends a number, HTTP also allows a date."""
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


class ZendeskGateway:
    """What draftdesk needs from Zendesk, as domain objects; errors as :class:`ZendeskError`."""

    def __init__(self, client: Zenpy, base_url: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")

    @classmethod
    def from_settings(
        cls,
        url: str,
        email: str,
        api_token: str,
        timeout: float = 30,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ZendeskGateway:
        """A gateway for ``url`` (``https://acme.zendesk.com``, or ``http://127.0.0.1:PORT``)."""
        scheme, netloc = split_zendesk_url(url)
        if not email or not api_token:
            raise ValueError(
                "Zendesk needs an agent e-mail and an API token (ZENDESK_EMAIL, ZENDESK_API_TOKEN)"
            )
        subdomain, domain = netloc.split(".", 1)
        session = _ZendeskSession(scheme, netloc, retry or RetryPolicy(), sleep)
        client = Zenpy(
            subdomain=subdomain,
            domain=domain,
            email=email,
            token=api_token,
            session=session,
            timeout=timeout,
            disable_cache=True,  # zenpy caches tickets for 30 s and users for good otherwise
            ratelimit_budget=0,  # the session waits out 429s; zenpy must never sleep by itself
        )
        return cls(client, f"{scheme}://{netloc}")

    def api_user(self) -> ZendeskUser:
        """Who the credentials sign in as (``users/me``); Zendesk answers an anonymous end user,
        id ``None``, when it does not authenticate the request rather than refusing it."""
        with self._translate_errors("checking the Zendesk API user", None):
            me = self.client.users.me()
        return ZendeskUser(
            id=int(me.id or 0), name=me.name or "", email=me.email or "", role=me.role or "end-user"
        )

    def ticket_url(self, ticket_id: int) -> str:
        """The ticket in the agent UI."""
        return f"{self.base_url}/agent/tickets/{ticket_id}"

    def fetch_ticket(self, ticket_id: int) -> Ticket:
        """The ticket with all its comments (oldest first), each author's role, and the names and
        e-mail the drafts need: three requests (ticket, comments, ``users/show_many``)."""
        with self._translate_errors(f"fetching ticket {ticket_id}", ticket_id):
            raw = self.client.tickets(id=ticket_id)
            raw_comments = list(self.client.tickets.comments(ticket=ticket_id))
        requester_id = int(raw.requester_id)
        author_ids = {i for i in (requester_id, *(int(c.author_id) for c in raw_comments)) if i > 0}
        users = {user.id: user for user in self.users_by_ids(author_ids)}
        requester = users.get(requester_id)
        if requester is None:
            log.warning("ticket %s: requester %s not found; drafting without a name", ticket_id, requester_id)
        comments = [
            Comment(
                id=int(c.id),
                author_id=int(c.author_id),
                body=c.body or "",
                public=bool(c.public),
                created_at=_parse_time(c.created_at, "comment created_at"),
                author_is_requester=int(c.author_id) == requester_id,
                author_role=author_role(users.get(int(c.author_id))),
            )
            for c in raw_comments
        ]
        comments.sort(key=lambda c: (c.created_at, c.id))
        return Ticket(
            id=int(raw.id),
            subject=raw.subject or "",
            status=raw.status or "",
            requester_id=requester_id,
            requester_name=requester.name if requester else "",
            created_at=_parse_time(raw.created_at, "ticket created_at"),
            url=self.ticket_url(int(raw.id)),
            comments=tuple(comments),
            requester_email=requester.email if requester else "",
            author_names=tuple(sorted({u.name for u in users.values() if u.name})),
            requester_locale=(requester.locale or "") if requester else "",
        )

    def add_comment(
        self, ticket_id: int, body: str, public: bool, author_id: int | None = None
    ) -> int | None:
        """Add a comment as ``author_id`` (an agent; None: the API user), public (the requester
        gets it) or internal. Returns the new comment's id when Zendesk's audit names it."""
        ticket = ZenpyTicket(id=ticket_id)
        comment = ZenpyComment(body=body, public=public)
        if author_id is not None:
            comment.author_id = author_id
        ticket.comment = comment
        kind = "a public reply" if public else "a note"
        with self._translate_errors(f"adding {kind} to ticket {ticket_id}", ticket_id):
            result = self.client.tickets.update(ticket)
        audit = getattr(result, "audit", None)
        for event in getattr(audit, "events", None) or []:
            if isinstance(event, dict) and event.get("type") == "Comment" and event.get("id") is not None:
                return int(event["id"])
        return None

    def agent_by_email(self, email: str) -> Agent | None:
        """The active agent or admin with this e-mail address (``users/search``), or None."""
        wanted = email.strip().lower()
        if not wanted:
            return None
        with self._translate_errors("looking up a Zendesk agent by e-mail", None):
            found = list(self.client.users.search(query=f"email:{wanted}"))
        for user in found:
            if (
                (user.email or "").lower() == wanted
                and user.role in ("agent", "admin")
                and user.active is not False
            ):
                return Agent(id=int(user.id), name=user.name or "", email=user.email or "")
        return None

    def incremental_changes(
        self, cursor: str | None, start_time: int
    ) -> Iterator[tuple[list[TicketChange], str | None, bool]]:
        """Pages of the cursor-based incremental ticket export, from ``cursor`` or ``start_time``.

        Yields ``(changes, cursor_to_persist, end_of_stream)`` per page and stops after the page
        with ``end_of_stream``. Deleted tickets come through with status ``deleted``.
        """
        for tickets, after_cursor, end_of_stream in self._export_pages(cursor, start_time):
            changes = [
                TicketChange(
                    id=int(t.id),
                    status=t.status or "",
                    created_at=_parse_time(t.created_at, "ticket created_at"),
                    updated_at=_parse_time(t.updated_at, "ticket updated_at"),
                )
                for t in tickets
            ]
            yield changes, after_cursor, end_of_stream

    def _export_pages(
        self, cursor: str | None, start_time: int
    ) -> Iterator[tuple[list[Any], str | None, bool]]:
        """zenpy's ticket objects, one export page per request, until ``end_of_stream``."""
        while True:
            with self._translate_errors("reading the incremental ticket export", None):
                if cursor:
                    page = self.client.tickets.incremental(cursor=cursor, paginate_by_time=False)
                else:
                    page = self.client.tickets.incremental(start_time=start_time, paginate_by_time=False)
            # One request per page: read zenpy's first-page values instead of iterating, which
            # would fetch the following pages before the caller could persist this cursor.
            end_of_stream = bool(getattr(page, "end_of_stream", False))
            after_cursor = getattr(page, "after_cursor", None) or cursor
            yield list(page.values or []), after_cursor, end_of_stream
            if end_of_stream:
                return
            if not after_cursor:
                raise ZendeskUnavailable(
                    "an incremental export page had neither after_cursor nor end_of_stream"
                )
            cursor = after_cursor

    # -- the finetune export ---------------------------------------------------------------

    def help_center_articles(self, locale: str) -> Iterator[HelpCenterArticle]:
        """Every article of the Help Center in ``locale`` (``/help_center/{locale}/articles``)."""
        from zenpy.lib.endpoint import PrimaryEndpoint

        api = self.client.help_center.articles
        endpoint = PrimaryEndpoint(f"help_center/{locale}/articles")
        with self._translate_errors(f"listing the Help Center articles in locale {locale!r}", None):
            for article in api._query_zendesk(endpoint, "article"):
                yield HelpCenterArticle(
                    id=int(article.id),
                    title=article.title or article.name or "",
                    body=article.body or "",
                    locale=article.locale or locale,
                    url=article.html_url or article.url or "",
                    updated_at=str(article.updated_at or ""),
                    draft=bool(article.draft),
                    section_id=int(article.section_id) if article.section_id is not None else None,
                )

    def help_center_article_count(self, locale: str) -> int | None:
        """How many articles the Help Center holds in ``locale``, in one request (a page of one
        article); None when Zendesk answers 404: the account has no Help Center (or not in ``locale``)."""
        api = self.client.help_center.articles
        url = f"{self.base_url}/api/v2/help_center/{locale}/articles.json"
        with self._translate_errors(f"counting the Help Center articles in locale {locale!r}", None):
            response = api.session.get(url, params={"per_page": 1}, timeout=api.timeout)
            if response.status_code == 404:
                return None
            response.raise_for_status()
            try:
                return int(response.json().get("count") or 0)
            except (ValueError, AttributeError) as exc:
                raise ZendeskUnavailable(
                    f"counting the Help Center articles in locale {locale!r}: Zendesk answered no article "
                    "count; check the zendesk url"
                ) from exc

    def help_center_changes(self, since: int) -> Iterator[HelpCenterArticle]:
        """Articles of every locale created or changed since the Unix time ``since``
        (``help_center/incremental/articles``), oldest change first."""
        api = self.client.help_center.articles
        with self._translate_errors("reading the Help Center's changed articles", None):
            for article in api.incremental(start_time=since):
                yield HelpCenterArticle(
                    id=int(article.id),
                    title=article.title or article.name or "",
                    body=article.body or "",
                    locale=(article.locale or "").lower(),
                    url=article.html_url or article.url or "",
                    updated_at=str(article.updated_at or ""),
                    draft=bool(article.draft),
                    section_id=int(article.section_id) if article.section_id is not None else None,
                )

    def ticket_export_pages(
        self, cursor: str | None, start_time: int
    ) -> Iterator[tuple[list[ExportedTicket], str | None, bool]]:
        """Pages of the cursor-based incremental ticket export with the fields training needs.

        Like :meth:`incremental_changes`: yields ``(tickets, cursor_to_persist, end_of_stream)``,
        one request per page, so the caller can save the cursor before the next request.
        """
        for page, after_cursor, end_of_stream in self._export_pages(cursor, start_time):
            tickets = [
                ExportedTicket(
                    id=int(t.id),
                    subject=t.subject or "",
                    status=t.status or "",
                    requester_id=int(t.requester_id) if t.requester_id is not None else 0,
                    assignee_id=int(t.assignee_id) if t.assignee_id is not None else None,
                    created_at=str(t.created_at or ""),
                    updated_at=str(t.updated_at or ""),
                    tags=tuple(t.tags or ()),
                )
                for t in page
            ]
            yield tickets, after_cursor, end_of_stream

    def ticket_comments(self, ticket_id: int) -> list[ExportedComment]:
        """All comments of a ticket, oldest first, internal notes included (``public=False``)."""
        with self._translate_errors(f"reading the comments of ticket {ticket_id}", ticket_id):
            raw = list(self.client.tickets.comments(ticket=ticket_id))
        comments = [
            ExportedComment(
                id=int(c.id),
                author_id=int(c.author_id),
                body=c.body or c.plain_body or "",
                html_body=c.html_body or "",
                public=bool(c.public),
                created_at=str(c.created_at or ""),
            )
            for c in raw
        ]
        return sorted(comments, key=lambda c: (c.created_at, c.id))

    def staff_names(self) -> list[str]:
        """The names of the agents and admins who sign in (``users?role=``, paged by zenpy's
        generator). An integration's user ("Jira Integration", "Shopify Sync") never signs in, and
        its name is a product's, which a customer's text must keep."""
        names: set[str] = set()
        for role in ("agent", "admin"):
            with self._translate_errors(f"listing the Zendesk users with role {role}", None):
                names.update(u.name for u in self.client.users(role=role) if u.name and u.last_login_at)
        return sorted(names)

    def users_by_ids(self, user_ids: Iterable[int]) -> list[ZendeskUser]:
        """The users with these ids (``users/show_many``, 100 per request); unknown ids are left out."""
        ids = sorted(set(user_ids))
        users: list[ZendeskUser] = []
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            with self._translate_errors(f"reading {len(chunk)} user record(s)", None):
                found = list(self.client.users(ids=chunk))
            users.extend(
                ZendeskUser(
                    id=int(u.id),
                    name=u.name or "",
                    email=u.email or "",
                    role=u.role or "end-user",
                    locale=u.locale or "",
                )
                for u in found
            )
        return users

    @contextlib.contextmanager
    def _translate_errors(self, action: str, ticket_id: int | None) -> Iterator[None]:
        """Zendesk's and the network's errors as this module's, each with ``status``: the HTTP status,
        or ``unreachable`` (a label for metrics)."""
        try:
            yield
        except ZendeskError as exc:
            exc.status = getattr(exc, "status", None) or "error"
            raise
        except Exception as exc:
            error = self._translated(exc, action, ticket_id)
            if error is None:
                raise
            raise error from exc

    def _translated(self, exc: Exception, action: str, ticket_id: int | None) -> ZendeskError | None:
        response = getattr(exc, "response", None)
        error: ZendeskError
        if isinstance(exc, RecordNotFoundException):
            if ticket_id is not None:
                error = TicketNotFound(
                    f"ticket {ticket_id} not found at {self.base_url}: deleted, merged, or a wrong id"
                )
            else:
                error = TicketNotFound(f"{action}: not found at {self.base_url}")
            error.status = "404"
            return error
        if isinstance(exc, RetriesExhausted):
            error = ZendeskUnavailable(f"{action}: {exc}; {_hint(exc.response)}")
            if exc.response is not None:
                error.retry_after = _retry_after_seconds(exc.response.headers.get("Retry-After"))
        elif isinstance(exc, APIException | requests.HTTPError):
            if response is not None and response.status_code == 404 and ticket_id is not None:
                error = TicketNotFound(f"ticket {ticket_id} not found at {self.base_url}")
            else:
                status = f"HTTP {response.status_code}" if response is not None else "an error"
                kind = (
                    ZendeskAccessDenied
                    if response is not None and response.status_code in (401, 403)
                    else ZendeskUnavailable
                )
                error = kind(f"{action}: Zendesk answered {status}; {_hint(response)}")
        elif isinstance(exc, requests.RequestException):
            error = ZendeskUnavailable(
                f"{action}: could not reach {self.base_url} ({type(exc).__name__}); check the zendesk "
                "url/subdomain in the config and the network"
            )
            error.status = "unreachable"
            return error
        elif isinstance(exc, ZenpyException):
            error = ZendeskUnavailable(f"{action}: {exc}")
        else:
            return None
        error.status = str(response.status_code) if response is not None else "error"
        return error


def _hint(response: requests.Response | None) -> str:
    status = response.status_code if response is not None else None
    if status == 401:
        return (
            "check ZENDESK_EMAIL and ZENDESK_API_TOKEN (Admin Center → Apps and integrations → "
            "Zendesk API: token access enabled, token active) and the zendesk url"
        )
    if status == 403:
        return "the API user lacks permission: use an agent or admin who can see and edit these tickets"
    if status == 429:
        return "Zendesk kept rate-limiting: poll less often; other API clients share the account's limit"
    if status is not None and status >= 500:
        return "Zendesk had a server error: check https://status.zendesk.com and try again later"
    return "check the zendesk url in the config and the API user's permissions"


def author_role(user: ZendeskUser | None) -> str:
    """A comment author's side, as `core.domain.Comment.author_role` names it."""
    if user is None:
        return "unknown"
    return "agent" if user.role in ("agent", "admin") else "end-user"


def _parse_time(value: Any, what: str) -> datetime:
    """Zendesk's ISO-8601 times ("2023-09-18T23:25:58Z") as aware UTC datetimes."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise ZendeskUnavailable(f"Zendesk sent an unreadable {what}: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
