"""`draftdesk zendesk setup`: the webhook and triggers of the README, made through Zendesk's API.

Idempotent: the webhook and each trigger are found by their name (title), created when missing,
updated when they differ, left alone when they match. Zendesk generates the webhook's signing
secret; it is never printed here, only where to read it.

API (developer.zendesk.com, Webhooks and Triggers):
  GET  /api/v2/webhooks?filter[name_contains]=NAME     {"webhooks": [...]}
  POST /api/v2/webhooks                                {"webhook": {...}} → 201 {"webhook": {...}}
  PATCH /api/v2/webhooks/{id}                          {"webhook": {...}} → 204
  GET  /api/v2/triggers/search?query=TITLE             {"triggers": [...]}
  POST /api/v2/triggers, PUT /api/v2/triggers/{id}     {"trigger": {...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

WEBHOOK_NAME = "draftdesk"
WEBHOOK_PATH = "/zendesk/webhook"
TRIGGER_BODY = json.dumps({"ticket_id": "{{ticket.id}}"})
NEW_TICKET = "draftdesk: new ticket"
CUSTOMER_REPLIED = "draftdesk: customer replied"
SECRET_HINT = (
    "Admin Center → Apps and integrations → Webhooks → {name} → Signing secret → Reveal secret; "
    "export it as ZENDESK_WEBHOOK_SECRET where the bot runs"
)


class ZendeskSetupError(RuntimeError):
    """A request failed; says which and what to check."""


def webhook_spec(public_url: str) -> dict[str, Any]:
    endpoint = public_url.rstrip("/") + WEBHOOK_PATH
    return {
        "name": WEBHOOK_NAME,
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }


def trigger_specs(webhook_id: str) -> list[dict[str, Any]]:
    """A new ticket; and an update with a public comment by an end user (a new round of drafts)."""
    action = [{"field": "notification_webhook", "value": [webhook_id, TRIGGER_BODY]}]
    return [
        {
            "title": NEW_TICKET,
            "active": True,
            "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}], "any": []},
            "actions": action,
        },
        {
            "title": CUSTOMER_REPLIED,
            "active": True,
            "conditions": {
                "all": [
                    {"field": "update_type", "operator": "is", "value": "Change"},
                    {"field": "comment_is_public", "operator": "is", "value": "true"},
                    {"field": "role", "operator": "is", "value": "end_user"},
                ],
                "any": [],
            },
            "actions": action,
        },
    ]


@dataclass(frozen=True)
class Step:
    kind: str  # "webhook" or "trigger"
    name: str
    action: str  # created, updated, unchanged; with --dry-run: would create, would update
    id: str | None


class ZendeskAdmin:
    """The few admin endpoints setup needs, over one authenticated requests session."""

    def __init__(self, url: str, email: str, api_token: str, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.session.auth = (f"{email}/token", api_token)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, self.url + path, timeout=30, **kwargs)
        except requests.RequestException as exc:
            raise ZendeskSetupError(
                f"{method} {path}: Zendesk could not be reached ({exc}); check [zendesk] url"
            ) from None
        if response.status_code in (401, 403):
            raise ZendeskSetupError(
                f"{method} {path}: Zendesk answered {response.status_code}: the API user must be an admin "
                "(check ZENDESK_EMAIL and ZENDESK_API_TOKEN)"
            )
        if response.status_code >= 400:
            raise ZendeskSetupError(
                f"{method} {path}: Zendesk answered {response.status_code}: {response.text[:200]}"
            )
        return response.json() if response.content else None

    def find_webhook(self, name: str) -> dict[str, Any] | None:
        found = self._call("GET", "/api/v2/webhooks", params={"filter[name_contains]": name})
        return next((w for w in found.get("webhooks", []) if w.get("name") == name), None)

    def create_webhook(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/api/v2/webhooks", json={"webhook": spec})["webhook"]

    def update_webhook(self, webhook_id: str, spec: dict[str, Any]) -> None:
        self._call("PATCH", f"/api/v2/webhooks/{webhook_id}", json={"webhook": spec})

    def find_trigger(self, title: str) -> dict[str, Any] | None:
        found = self._call("GET", "/api/v2/triggers/search", params={"query": title})
        return next((t for t in found.get("triggers", []) if t.get("title") == title), None)

    def create_trigger(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/api/v2/triggers", json={"trigger": spec})["trigger"]

    def update_trigger(self, trigger_id: str, spec: dict[str, Any]) -> None:
        self._call("PUT", f"/api/v2/triggers/{trigger_id}", json={"trigger": spec})


def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in wanted.items())


def set_up(admin: ZendeskAdmin, public_url: str, dry_run: bool = False) -> list[Step]:
    """Create or update the webhook, then the triggers that call it; what was done, in order."""
    steps: list[Step] = []
    wanted = webhook_spec(public_url)
    current = admin.find_webhook(WEBHOOK_NAME)
    prefix = "would " if dry_run else ""
    if current is None:
        webhook_id = None if dry_run else str(admin.create_webhook(wanted)["id"])
        steps.append(Step("webhook", WEBHOOK_NAME, prefix + ("create" if dry_run else "created"), webhook_id))
    else:
        webhook_id = str(current["id"])
        if _differs(current, wanted):
            if not dry_run:
                admin.update_webhook(webhook_id, wanted)
            steps.append(
                Step("webhook", WEBHOOK_NAME, prefix + ("update" if dry_run else "updated"), webhook_id)
            )
        else:
            steps.append(Step("webhook", WEBHOOK_NAME, "unchanged", webhook_id))
    for spec in trigger_specs(webhook_id or "(the new webhook)"):
        trigger = admin.find_trigger(spec["title"])
        if trigger is None:
            trigger_id = None if dry_run else str(admin.create_trigger(spec)["id"])
            steps.append(
                Step("trigger", spec["title"], prefix + ("create" if dry_run else "created"), trigger_id)
            )
        elif _differs(trigger, spec):
            if not dry_run:
                admin.update_trigger(str(trigger["id"]), spec)
            steps.append(
                Step(
                    "trigger",
                    spec["title"],
                    prefix + ("update" if dry_run else "updated"),
                    str(trigger["id"]),
                )
            )
        else:
            steps.append(Step("trigger", spec["title"], "unchanged", str(trigger["id"])))
    return steps


# A signed event the bot accepts and drafts nothing for: proves the URL, the proxy and the secret.
PING = {
    "type": "zen:event-type:ticket.status_changed",
    "detail": {"id": "1"},
    "event": {"note": "draftdesk test"},
}


def send_test_delivery(url: str, secret: str, ticket_id: int | None = None) -> tuple[int, str]:
    """POST a webhook signed as Zendesk signs it to ``url``; the bot's status and answer.

    With ``ticket_id`` the body is the triggers' ``{"ticket_id": …}``, so the bot queues that ticket
    and drafts for it; without, an event that needs no drafts.
    """
    import time

    from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    payload = {"ticket_id": str(ticket_id)} if ticket_id else PING
    body = json.dumps(payload).encode()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, stamp),
        TIMESTAMP_HEADER: stamp,
        "User-Agent": "Zendesk Webhook (draftdesk zendesk test-webhook)",
    }
    try:
        response = requests.post(url, data=body, headers=headers, timeout=15)
    except requests.RequestException as exc:
        raise ZendeskSetupError(
            f"nothing answered at {url} ({type(exc).__name__}): is `draftdesk run` running with "
            '[intake] mode = "webhook" or "both", and is --url the address Zendesk calls?'
        ) from None
    return response.status_code, response.text[:300]


def explain_delivery(status: int) -> str:
    if status == 200:
        return "the bot accepted the signed delivery: the URL and ZENDESK_WEBHOOK_SECRET are right"
    if status == 401:
        return (
            "the bot refused the signature: ZENDESK_WEBHOOK_SECRET here differs from the bot's, or the "
            "clocks differ by more than 5 minutes"
        )
    if status == 404:
        return (
            "no webhook endpoint there: the path must be /zendesk/webhook, and [intake] mode webhook or both"
        )
    return "unexpected answer: check the bot's log"
