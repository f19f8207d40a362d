"""The admin endpoints of the Zendesk stand-in: webhooks and triggers, in Zendesk's response shapes.

Shapes as documented at developer.zendesk.com (Webhooks API, Triggers API): webhooks have string
ids and are listed with cursor ``meta``/``links``; PATCH answers 204 without a body; triggers have
numeric ids and are searched by title.
"""

from __future__ import annotations

import copy
import itertools
import re
from datetime import UTC, datetime
from typing import Any

_WEBHOOK = re.compile(r"/api/v2/webhooks/([A-Za-z0-9]+)")
_TRIGGER = re.compile(r"/api/v2/triggers/(\d+)(?:\.json)?")
Answer = tuple[int, dict[str, str], Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AdminObjects:
    """Webhooks and triggers kept in memory; ``handle`` answers a request or returns None."""

    def __init__(self, base_url: str, agent_id: int) -> None:
        self.base_url = base_url
        self.agent_id = agent_id
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.triggers: dict[int, dict[str, Any]] = {}
        self.secrets: dict[str, str] = {}
        self._webhook_ids = itertools.count(1)
        self._trigger_ids = itertools.count(360_000_000_001)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer | None:
        if path == "/api/v2/webhooks":
            if method == "GET":
                name = query.get("filter[name_contains]", "")
                found = [
                    copy.deepcopy(w) for w in self.webhooks.values() if name.lower() in w["name"].lower()
                ]
                meta = {"has_more": False, "after_cursor": None, "before_cursor": None}
                return 200, {}, {"webhooks": found, "meta": meta, "links": {"next": None, "prev": None}}
            if method == "POST":
                return self._create_webhook(body)
        elif (match := _WEBHOOK.fullmatch(path)) and match.group(1) in self.webhooks:
            webhook = self.webhooks[match.group(1)]
            if method == "GET":
                return 200, {}, {"webhook": copy.deepcopy(webhook)}
            if method == "PATCH":
                webhook.update((body or {}).get("webhook") or {})
                webhook.update(updated_at=_now(), updated_by=str(self.agent_id))
                return 204, {}, None
        elif path == "/api/v2/triggers/search" and method == "GET":
            words = query.get("query", "").lower()
            found = [copy.deepcopy(t) for t in self.triggers.values() if words in t["title"].lower()]
            return 200, {}, {"triggers": found, "next_page": None, "previous_page": None, "count": len(found)}
        elif path in ("/api/v2/triggers", "/api/v2/triggers.json") and method == "POST":
            return self._create_trigger(body)
        elif (match := _TRIGGER.fullmatch(path)) and int(match.group(1)) in self.triggers:
            trigger = self.triggers[int(match.group(1))]
            if method == "GET":
                return 200, {}, {"trigger": copy.deepcopy(trigger)}
            if method == "PUT":
                trigger.update((body or {}).get("trigger") or {})
                trigger.update(updated_at=_now(), raw_title=trigger["title"])
                return 200, {}, {"trigger": copy.deepcopy(trigger)}
        return None

    def _create_webhook(self, body: Any) -> Answer:
        spec = (body or {}).get("webhook") if isinstance(body, dict) else None
        missing = [
            k
            for k in ("name", "endpoint", "http_method", "request_format", "status")
            if not (spec or {}).get(k)
        ]
        if missing:
            details = {
                k: [{"description": f"{k} is required", "error": "RequiredFieldMissing"}] for k in missing
            }
            return (
                400,
                {},
                {"errors": [{"code": "InvalidInput", "title": "Invalid input", "detail": details}]},
            )
        webhook_id = f"01GDXYD7ZTWYP{next(self._webhook_ids):013d}"
        self.webhooks[webhook_id] = {
            "id": webhook_id,
            "name": spec["name"],
            "status": spec["status"],
            "subscriptions": list(spec.get("subscriptions") or []),
            "created_at": _now(),
            "created_by": str(self.agent_id),
            "endpoint": spec["endpoint"],
            "http_method": spec["http_method"],
            "request_format": spec["request_format"],
            "updated_at": None,
            "updated_by": None,
        }
        self.secrets[webhook_id] = f"dGhpcy1pcy1hLXN0YW5kLWluLXNlY3JldC0{webhook_id[-4:]}"
        return 201, {}, {"webhook": copy.deepcopy(self.webhooks[webhook_id])}

    def _create_trigger(self, body: Any) -> Answer:
        spec = (body or {}).get("trigger") if isinstance(body, dict) else None
        if not spec or not spec.get("title") or not spec.get("actions") or not spec.get("conditions"):
            return 422, {}, {"error": "RecordInvalid", "description": "Record validation errors"}
        trigger_id = next(self._trigger_ids)
        self.triggers[trigger_id] = {
            "url": f"{self.base_url}/api/v2/triggers/{trigger_id}.json",
            "id": trigger_id,
            "title": spec["title"],
            "active": spec.get("active", True),
            "updated_at": _now(),
            "created_at": _now(),
            "default": False,
            "actions": spec["actions"],
            "conditions": spec["conditions"],
            "description": spec.get("description"),
            "position": len(self.triggers) + 1,
            "raw_title": spec["title"],
            "category_id": "10026",
        }
        return 201, {}, {"trigger": copy.deepcopy(self.triggers[trigger_id])}
