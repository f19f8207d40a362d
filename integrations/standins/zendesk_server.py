"""A loopback stand-in for the part of the Zendesk Support API that draftdesk uses.

Stdlib only (no pytest) so the offline demo can use it too. It listens on 127.0.0.1 on a free
port in a daemon thread, answers with the field names of the real API (see
``tests/fixtures/zendesk``) and records every request, so tests can assert what was sent.

    with FakeZendesk() as zd:
        zd.add_user(7, "Ada Lovelace", "ada@example.com")
        zd.add_ticket(42, "Printer on fire", requester_id=7, comments=[(7, "Help!", True)])
        ... point the client at zd.url ...
"""

from __future__ import annotations

import base64
import contextlib
import copy
import itertools
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from integrations.standins.zendesk_admin import AdminObjects

DEFAULT_AGENT_ID = 900_000_001  # the API user: author of the comments added through PUT
_TICKET_PATH = re.compile(r"/api/v2/tickets/(\d+)\.json")
_COMMENTS_PATH = re.compile(r"/api/v2/tickets/(\d+)/comments\.json")
_USER_PATH = re.compile(r"/api/v2/users/(\d+)\.json")
_INCREMENTAL_PATH = "/api/v2/incremental/tickets/cursor.json"
_ARTICLES_PATH = re.compile(r"/api/v2/help_center/(?:([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,4})?)/)?articles\.json")
_USERS_SHOW_MANY_PATH = "/api/v2/users/show_many.json"
_USERS_PATH = "/api/v2/users.json"
_ME_PATH = "/api/v2/users/me.json"
_USERS_SEARCH_PATH = "/api/v2/users/search.json"
_ARTICLES_INCREMENTAL_PATH = "/api/v2/help_center/incremental/articles.json"
DEFAULT_LOCALE = "en-us"


def _iso(moment: datetime | str | None) -> str:
    if moment is None:
        moment = datetime.now(UTC)
    if isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]


@dataclass
class _Failure:
    path_prefix: str
    status: int
    headers: dict[str, str]
    times: int


@dataclass
class _Ticket:
    data: dict[str, Any]
    comments: list[dict[str, Any]] = field(default_factory=list)


class FakeZendesk:
    """The fake API server. Seed it with ``add_*``; read ``requests`` afterwards.

    ``credentials=(email, api_token)`` makes it answer 401 to any other Basic auth, like Zendesk
    does for a wrong token; by default any credentials are accepted.
    """

    def __init__(self, credentials: tuple[str, str] | None = None, agent_id: int = DEFAULT_AGENT_ID) -> None:
        self.credentials = credentials
        self.agent_id = agent_id
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._users: dict[int, dict[str, Any]] = {}
        self._tickets: dict[int, _Ticket] = {}
        self._pages: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._articles: dict[tuple[str, int], dict[str, Any]] = {}  # (locale, id) -> article
        self._ids = itertools.count(10_000_000_001)
        # Set by hold_writes: a PUT waits there (a client killed mid-call), after or before its change.
        self._write_gate: threading.Event | None = None
        self._gate_before_change = False
        self._read_gates: dict[str, threading.Event] = {}  # path prefix -> what a GET there waits for
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.admin = AdminObjects(self.url, agent_id)  # webhooks and triggers
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-zendesk",
            daemon=True,
        )
        self._thread.start()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeZendesk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- seeding -----------------------------------------------------------------------------

    def add_user(
        self,
        id: int,
        name: str,
        email: str,
        role: str = "end-user",
        signs_in: bool | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        """``signs_in``: whether the user has a ``last_login_at`` (default: agents and admins do; an
        integration's user, e.g. "Jira Integration", never signs in). ``locale``: the language Zendesk
        writes to them in."""
        now = _iso(None)
        signs_in = role in ("agent", "admin") if signs_in is None else signs_in
        user = {
            "id": id,
            "url": f"{self.url}/api/v2/users/{id}.json",
            "name": name,
            "email": email,
            "created_at": now,
            "updated_at": now,
            "time_zone": "UTC",
            "iana_time_zone": "Etc/UTC",
            "locale": locale,
            "locale_id": 1 if locale == "en-US" else 8,
            "organization_id": None,
            "role": role,
            "verified": True,
            "active": True,
            "suspended": False,
            "last_login_at": now if signs_in else None,
            "tags": [],
            "user_fields": {},
        }
        with self._lock:
            self._users[id] = user
        return user

    def add_ticket(
        self,
        id: int,
        subject: str,
        requester_id: int,
        status: str = "new",
        comments: Iterable[tuple[int, str, bool]] = (),
        created_at: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Add a ticket; ``comments`` are ``(author_id, body, public)``, oldest first."""
        created = _iso(created_at)
        data = {
            "url": f"{self.url}/api/v2/tickets/{id}.json",
            "id": id,
            "external_id": None,
            "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": created,
            "updated_at": created,
            "type": None,
            "subject": subject,
            "raw_subject": subject,
            "description": "",
            "priority": None,
            "status": status,
            "recipient": None,
            "requester_id": requester_id,
            "submitter_id": requester_id,
            "assignee_id": None,
            "organization_id": None,
            "group_id": None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": [],
            "custom_fields": [],
            "satisfaction_rating": None,
            "sharing_agreement_ids": [],
            "fields": [],
            "followup_ids": [],
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": False,
        }
        with self._lock:
            self._tickets[id] = _Ticket(data)
        for author_id, body, public in comments:
            self.add_comment(id, author_id, body, public, created_at=created)
        return data

    def add_comment(
        self,
        ticket_id: int,
        author_id: int,
        body: str,
        public: bool = True,
        created_at: datetime | str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            return self._append_comment(ticket_id, author_id, body, public, _iso(created_at))

    def add_article(
        self,
        id: int,
        title: str,
        body: str,
        locale: str = DEFAULT_LOCALE,
        updated_at: datetime | str | None = None,
        section_id: int = 360000000001,
        draft: bool = False,
    ) -> dict[str, Any]:
        """Add a Help Center article (``body`` is HTML) in ``locale``; translations share the id."""
        updated = _iso(updated_at)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")
        article = {
            "id": id,
            "url": f"{self.url}/api/v2/help_center/{locale}/articles/{id}.json",
            "html_url": f"{self.url}/hc/{locale}/articles/{id}-{slug}",
            "author_id": self.agent_id,
            "comments_disabled": False,
            "draft": draft,
            "promoted": False,
            "position": 0,
            "vote_sum": 0,
            "vote_count": 0,
            "section_id": section_id,
            "created_at": updated,
            "updated_at": updated,
            "edited_at": updated,
            "name": title,
            "title": title,
            "body": body,
            "source_locale": DEFAULT_LOCALE,
            "locale": locale,
            "outdated": False,
            "outdated_locales": [],
            "permission_group_id": 1,
            "user_segment_id": None,
            "label_names": [],
        }
        with self._lock:
            self._articles[(locale.lower(), id)] = article
        return article

    def set_status(self, ticket_id: int, status: str) -> None:
        """Change a ticket's status, as an agent in Zendesk would."""
        with self._lock:
            self._tickets[ticket_id].data["status"] = status

    def hold_writes(self, before_change: bool = False) -> threading.Event:
        """From now on a PUT waits until the returned event is set: after making its change (the
        comment is in, the client never hears so), or with ``before_change`` before it, and is then
        dropped (the comment never arrives). What a client killed during the call leaves behind."""
        gate = threading.Event()
        with self._lock:
            self._write_gate, self._gate_before_change = gate, before_change
        return gate

    def hold_reads(self, path_prefix: str) -> threading.Event:
        """From now on a GET whose path starts with ``path_prefix`` waits until the returned event is
        set (a slow Zendesk), then is answered as usual."""
        gate = threading.Event()
        with self._lock:
            self._read_gates[path_prefix] = gate
        return gate

    def _read_gate(self, method: str, path: str) -> threading.Event | None:
        if method != "GET":
            return None
        with self._lock:
            return next((g for prefix, g in self._read_gates.items() if path.startswith(prefix)), None)

    def set_incremental_pages(self, pages: list[dict[str, Any]]) -> None:
        """Pages of the cursor export, each a response body (``tickets``, ``after_cursor``, …).

        The first page answers ``start_time=…``; each next page answers the previous page's
        ``after_cursor``. ``after_url``/``before_url`` are rewritten to point here.
        """
        with self._lock:
            self._pages = [copy.deepcopy(page) for page in pages]

    def fail_next(
        self, path_prefix: str, status: int, headers: Mapping[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests whose path starts with ``path_prefix`` with ``status``."""
        with self._lock:
            self._failures.append(_Failure(path_prefix, status, dict(headers or {}), times))

    # -- inspection --------------------------------------------------------------------------

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._tickets[ticket_id].data)

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._tickets[ticket_id].comments)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.method == method and r.path == path]

    # -- internals (called with the lock held) -----------------------------------------------

    def _append_comment(
        self, ticket_id: int, author_id: int, body: str, public: bool, created_at: str
    ) -> dict[str, Any]:
        ticket = self._tickets[ticket_id]
        comment = {
            "id": next(self._ids),
            "type": "Comment",
            "author_id": author_id,
            "body": body,
            "html_body": f'<div class="zd-comment" dir="auto"><p dir="auto">{_html_escape(body)}</p></div>',
            "plain_body": body,
            "public": public,
            "attachments": [],
            "audit_id": next(self._ids),
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": created_at,
            "metadata": {"system": {}, "custom": {}},
        }
        ticket.comments.append(comment)
        if len(ticket.comments) == 1:
            ticket.data["description"] = body
        if not public:
            ticket.data["is_public"] = any(c["public"] for c in ticket.comments)
        ticket.data["updated_at"] = created_at
        return comment

    def _api_user(self) -> dict[str, Any]:
        """The signed-in user: the seeded user ``agent_id`` if any, else an admin of that id."""
        if self.agent_id in self._users:
            return copy.deepcopy(self._users[self.agent_id])
        email = self.credentials[0] if self.credentials else "api-agent@example.com"
        return {"id": self.agent_id, "name": "API agent", "email": email, "role": "admin", "active": True}

    def _take_failure(self, path: str) -> _Failure | None:
        for failure in self._failures:
            if path.startswith(failure.path_prefix) and failure.times > 0:
                failure.times -= 1
                if failure.times == 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _authorized(self, header: str | None) -> bool:
        if self.credentials is None:
            return True
        email, token = self.credentials
        expected = base64.b64encode(f"{email}/token:{token}".encode()).decode()
        return header == f"Basic {expected}"

    def _handle(
        self, method: str, path: str, query: dict[str, str], body: Any, auth: str | None
    ) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            failure = self._take_failure(path)
            if failure is not None:
                return failure.status, failure.headers, _error_body(failure.status)
            if not self._authorized(auth):
                return 401, {}, {"error": "Couldn't authenticate you"}
            if (answer := self.admin.handle(method, path, query, body)) is not None:
                return answer
            if match := _TICKET_PATH.fullmatch(path):
                ticket_id = int(match.group(1))
                if ticket_id not in self._tickets:
                    return _not_found()
                if method == "GET":
                    return 200, {}, {"ticket": copy.deepcopy(self._tickets[ticket_id].data)}
                if method == "PUT":
                    return self._update_ticket(ticket_id, body)
            elif match := _COMMENTS_PATH.fullmatch(path):
                ticket_id = int(match.group(1))
                if ticket_id not in self._tickets:
                    return _not_found()
                if method == "GET":
                    return self._list_comments(ticket_id, path, query)
            elif path == _ME_PATH:
                if method == "GET":
                    return 200, {}, {"user": self._api_user()}
            elif match := _USER_PATH.fullmatch(path):
                user = self._users.get(int(match.group(1)))
                if user is None:
                    return _not_found()
                if method == "GET":
                    return 200, {}, {"user": copy.deepcopy(user)}
            elif path == _INCREMENTAL_PATH:
                if method == "GET":
                    return self._incremental(query)
            elif match := _ARTICLES_PATH.fullmatch(path):
                if method == "GET":
                    return self._list_articles((match.group(1) or DEFAULT_LOCALE).lower(), path, query)
            elif path == _USERS_SEARCH_PATH:
                if method == "GET":
                    return 200, {}, self._search_users(query)
            elif path == _ARTICLES_INCREMENTAL_PATH:
                if method == "GET":
                    return self._incremental_articles(query)
            elif path == _USERS_PATH:
                if method == "GET":
                    return 200, {}, self._list_users(path, query)
            elif path == _USERS_SHOW_MANY_PATH:
                if method == "GET":
                    ids = [int(i) for i in query.get("ids", "").split(",") if i.strip().isdigit()]
                    return (
                        200,
                        {},
                        {"users": [copy.deepcopy(self._users[i]) for i in ids if i in self._users]},
                    )
            else:
                return 404, {}, {"error": "InvalidEndpoint", "description": "Not found"}
            return 405, {}, {"error": "MethodNotAllowed", "description": f"{method} is not allowed here"}

    def _update_ticket(self, ticket_id: int, body: Any) -> tuple[int, dict[str, str], Any]:
        changes = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            return 400, {}, {"error": "InvalidValue", "description": 'expected {"ticket": {…}}'}
        ticket = self._tickets[ticket_id]
        if ticket.data["status"] == "closed":
            return 422, {}, {"error": "RecordInvalid", "description": "Status: closed prevents ticket update"}
        now = _iso(None)
        events: list[dict[str, Any]] = []
        comment = changes.get("comment")
        if isinstance(comment, dict):
            text = comment.get("body") or comment.get("html_body") or ""
            if not text:
                return 422, {}, {"error": "RecordInvalid", "description": "Record validation errors"}
            public = comment.get("public", True) is not False
            author = comment.get("author_id", self.agent_id)
            added = self._append_comment(ticket_id, author, text, public, now)
            event = {k: added[k] for k in ("id", "type", "author_id", "body", "html_body", "plain_body")}
            events.append({**event, "public": public, "attachments": [], "audit_id": added["audit_id"]})
        for key in ("status", "priority", "subject", "assignee_id", "tags"):
            if key in changes:
                events.append(
                    {
                        "id": next(self._ids),
                        "type": "Change",
                        "value": changes[key],
                        "field_name": key,
                        "previous_value": ticket.data.get(key),
                    }
                )
                ticket.data[key] = changes[key]
        ticket.data["updated_at"] = now
        audit = {
            "id": next(self._ids),
            "ticket_id": ticket_id,
            "created_at": now,
            "author_id": self.agent_id,
            "metadata": {"system": {"client": "fake-zendesk"}, "custom": {}},
            "events": events,
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
        }
        return 200, {}, {"ticket": copy.deepcopy(ticket.data), "audit": audit}

    def _search_users(self, query: dict[str, str]) -> dict[str, Any]:
        """``query=email:ADDRESS`` matches the address exactly; any other query, a part of the name
        or address (what Zendesk's user search does, simplified)."""
        text = query.get("query", "").strip().lower()
        if text.startswith("email:"):
            address = text[len("email:") :]
            users = [u for u in self._users.values() if u["email"].lower() == address]
        else:
            users = [u for u in self._users.values() if text and text in f"{u['name']} {u['email']}".lower()]
        return {"users": copy.deepcopy(users), "next_page": None, "previous_page": None, "count": len(users)}

    def _incremental_articles(self, query: dict[str, str]) -> tuple[int, dict, Any]:
        """Every locale's articles updated at or after ``start_time``, oldest first, one page."""
        if not query.get("start_time", "").isdigit():
            return 400, {}, {"error": "InvalidPaginationParameter", "description": "start_time is required"}
        since = int(query["start_time"])
        changed = sorted(
            (a for a in self._articles.values() if _unix(a["updated_at"]) >= since),
            key=lambda a: (a["updated_at"], a["id"]),
        )
        end_time = max((_unix(a["updated_at"]) for a in changed), default=since)
        body = {
            "articles": copy.deepcopy(changed),
            "count": len(changed),
            "end_time": end_time,
            "next_page": None,
        }
        return 200, {}, body

    def _list_comments(self, ticket_id: int, path: str, query: dict[str, str]) -> tuple[int, dict, Any]:
        comments = copy.deepcopy(self._tickets[ticket_id].comments)
        if query.get("sort_order") == "desc":
            comments.reverse()
        size_text = query.get("page[size]")
        if size_text is None:
            # Offset pagination: everything on one page.
            body = {"comments": comments, "next_page": None, "previous_page": None, "count": len(comments)}
            return 200, {}, body
        # Cursor pagination, as Zendesk answers when page[size] is sent (zenpy sends it).
        size = max(1, min(100, int(size_text)))
        start = int(query.get("page[after]") or 0)
        end = min(start + size, len(comments))
        has_more = end < len(comments)
        next_query = {k: v for k, v in query.items() if k != "page[after]"} | {"page[after]": str(end)}
        next_url = f"{self.url}{path}?{urlencode(next_query)}" if has_more else None
        body = {
            "comments": comments[start:end],
            "meta": {
                "has_more": has_more,
                "after_cursor": str(end) if has_more else None,
                "before_cursor": str(start) if start else None,
            },
            "links": {"next": next_url, "prev": None},
        }
        return 200, {}, body

    def _list_users(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        """``users.json?role=agent`` (or ``role[]=``), offset-paged as Zendesk does for users."""
        role = query.get("role") or query.get("role[]")
        users = [copy.deepcopy(u) for _, u in sorted(self._users.items()) if not role or u["role"] == role]
        per_page = max(1, min(100, int(query.get("per_page") or 100)))
        page = max(1, int(query.get("page") or 1))
        start = (page - 1) * per_page
        more = start + per_page < len(users)
        next_query = {k: v for k, v in query.items() if k != "page"} | {"page": str(page + 1)}
        return {
            "users": users[start : start + per_page],
            "count": len(users),
            "next_page": f"{self.url}{path}?{urlencode(next_query)}" if more else None,
            "previous_page": None,
        }

    def _list_articles(self, locale: str, path: str, query: dict[str, str]) -> tuple[int, dict, Any]:
        """Cursor pagination when ``page[size]`` is sent (zenpy sends it), else offset pagination."""
        articles = [copy.deepcopy(a) for (loc, _), a in sorted(self._articles.items()) if loc == locale]
        if "page[size]" in query:
            size = max(1, min(100, int(query["page[size]"])))
            start = int(query.get("page[after]") or 0)
            end = min(start + size, len(articles))
            has_more = end < len(articles)
            next_query = {k: v for k, v in query.items() if k != "page[after]"} | {"page[after]": str(end)}
            cursor_body = {
                "articles": articles[start:end],
                "meta": {
                    "has_more": has_more,
                    "after_cursor": str(end) if has_more else None,
                    "before_cursor": str(start) if start else None,
                },
                "links": {
                    "next": f"{self.url}{path}?{urlencode(next_query)}" if has_more else None,
                    "prev": None,
                },
            }
            return 200, {"x-rate-limit": "700", "x-rate-limit-remaining": "699"}, cursor_body
        per_page = max(1, min(100, int(query.get("per_page") or 30)))
        page = max(1, int(query.get("page") or 1))
        start = (page - 1) * per_page
        page_count = max(1, -(-len(articles) // per_page))
        next_query = {k: v for k, v in query.items() if k != "page"} | {"page": str(page + 1)}
        body = {
            "articles": articles[start : start + per_page],
            "page": page,
            "per_page": per_page,
            "page_count": page_count,
            "count": len(articles),
            "next_page": f"{self.url}{path}?{urlencode(next_query)}" if page < page_count else None,
            "previous_page": None,
            "sort_by": "position",
            "sort_order": "asc",
        }
        return 200, {"x-rate-limit": "700", "x-rate-limit-remaining": "699"}, body

    def _incremental(self, query: dict[str, str]) -> tuple[int, dict, Any]:
        if ("start_time" in query) == ("cursor" in query):
            return 400, {}, {"error": "InvalidPaginationParameter", "description": "start_time or cursor"}
        if not self._pages:
            page: dict[str, Any] = {
                "tickets": [],
                "after_cursor": None,
                "before_cursor": None,
                "end_of_stream": True,
            }
        elif "start_time" in query:
            page = self._pages[0]
        else:
            cursors = [p.get("after_cursor") for p in self._pages]
            if query["cursor"] not in cursors:
                return 400, {}, {"error": "InvalidPaginationParameter", "description": "unknown cursor"}
            at = cursors.index(query["cursor"]) + 1
            # Past the last page Zendesk answers an empty one, at the end of the stream, same cursor.
            page = self._pages[at] if at < len(self._pages) else {**self._pages[-1], "tickets": []}
        body = copy.deepcopy(page)
        for key, cursor_key in (("after_url", "after_cursor"), ("before_url", "before_cursor")):
            cursor = body.get(cursor_key)
            body[key] = f"{self.url}{_INCREMENTAL_PATH}?{urlencode({'cursor': cursor})}" if cursor else None
        return 200, {"rate-limit": "10", "rate-limit-remaining": "9"}, body


def _unix(moment: str) -> int:
    return int(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp())


def _not_found() -> tuple[int, dict[str, str], Any]:
    return 404, {}, {"error": "RecordNotFound", "description": "Not found"}


def _error_body(status: int) -> dict[str, str]:
    if status == 429:
        return {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests exceeded"}
    if status == 401:
        return {"error": "Couldn't authenticate you"}
    if status == 404:
        return {"error": "RecordNotFound", "description": "Not found"}
    return {"error": "ServerError", "description": f"fake failure {status}"}


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _make_handler(fake: FakeZendesk) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = dict(self.headers.items())
            fake.requests.append(RecordedRequest(self.command, parts.path, query, body, headers))
            read_gate = fake._read_gate(self.command, parts.path)
            if read_gate is not None:
                read_gate.wait()
            gate = fake._write_gate if self.command == "PUT" else None
            if gate is not None and fake._gate_before_change:
                gate.wait()
                self.close_connection = True
                return  # the request is dropped unanswered: the change never happens
            status, extra_headers, payload = fake._handle(
                self.command, parts.path, query, body, self.headers.get("Authorization")
            )
            if gate is not None and not fake._gate_before_change:
                gate.wait()
            data = b"" if status == 204 else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra_headers.items():
                self.send_header(name, str(value))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client killed by a test
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
