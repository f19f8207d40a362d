"""The HTTP side under a burst: signed Slack clicks and signed Zendesk webhooks over loopback.

    python -m benchmarks.bench_http                      # a year's store (73,000 tickets), waitress
    python -m benchmarks.bench_http --servers waitress,wsgiref --tickets 5000
    python -m benchmarks.bench_http --tickets 5000 --store memory
    python -m benchmarks.bench_http --burst 5000         # a backlog through the whole bot: bench_http_burst

Each server in turn (``--servers``) serves the real routes (bot.operations.web.DraftdeskWSGI) with a real
Bolt app (bot.slack.listeners: new_bolt_app, register_listeners, AfterAck) and the real webhook handler
(bot.drafting.intake) over a store holding ``--tickets`` tickets (``--store``: partitioned, the store
of `draftdesk run`, or memory), then:

The partitioned store is built as ``benchmarks.bench_store`` builds it (bulk import, a minute for a
year); the memory store through the Store API. (``--store tinydb``, the single-file store, was
removed on 2026-12-08 with that store: its figures in docs/performance.md are history.)

- clicks: ``--clicks`` signed button clicks at once, each from its own client thread and agent;
  their statuses and latencies, and whether every vote reached the store after the acks;
- webhooks: ``--webhooks`` signed webhooks from ``--clients`` client threads, each ticket sent
  twice; ack latency p50/p99, and whether the queue holds exactly the distinct tickets.

Every request opens its own connection, as Slack and Zendesk do. Slack and Zendesk themselves
are not called: chat updates go to a poster that only counts them. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt.authorization import AuthorizeResult

from benchmarks.bench_store import CHANNEL, build, created_at
from bot.drafting.intake import WebhookResponse, handle_zendesk_webhook
from bot.operations.web import DraftdeskWSGI, WebServer
from bot.slack.listeners import AfterAck, DraftActions, new_bolt_app, register_listeners
from bot.slack.sending import SendFlow
from bot.store.memory import MemoryStore
from bot.store.partitioned import PartitionedStore
from core.domain import JOB_QUEUED
from core.ports import Store
from integrations.standins.slack_requests import block_action_body, signed_headers
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from models.machine import cpu_description

SLACK_SECRET = "bench-slack-signing-secret"
ZENDESK_SECRET = "bench-zendesk-webhook-secret"


class CountingPoster:
    """The ChatPoster calls the listeners make after the ack, counted, never sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.updates = 0
        self.ephemerals = 0

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> None:
        with self.lock:
            self.updates += 1

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None = None,
        blocks: list[dict] | None = None,
    ) -> None:
        with self.lock:
            self.ephemerals += 1


class NoZendesk:
    """The benchmark sends no draft: neither Zendesk nor modals are called."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the benchmark calls no {name}")


class WsgirefServer:
    """The server bot/operations/web.py used before waitress: wsgiref, a thread per connection, backlog 5."""

    class _Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    def __init__(self, app: Callable[..., Iterable[bytes]], host: str, port: int) -> None:
        self.httpd = make_server(host, port, app, server_class=self._Server, handler_class=self._Quiet)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.thread.join(timeout=10)
        self.httpd.server_close()


def bulk_seeded(path: Path, tickets: int) -> tuple[PartitionedStore, list[tuple[str, str, str]]]:
    """A partitioned store holding benchmarks.bench_store's history, and (draft id, thread ts,
    message ts) of every ticket's Draft A."""
    build(path, tickets)
    drafts = []
    for ticket in range(tickets):
        ts = created_at(ticket).timestamp()
        drafts.append((f"t{ticket}r1A", f"{ts:.6f}", f"{ts + 1:.6f}"))
    return PartitionedStore(path), drafts


def seed(store: Store, tickets: int) -> list[tuple[str, str, str]]:
    """``tickets`` tickets, each with a posted thread and one round of three drafts; returns
    (draft id, thread ts, message ts) of every ticket's Draft A."""
    drafts = []
    for ticket_id in range(1, tickets + 1):
        parent_ts = f"1700000000.{ticket_id:06d}"
        store.save_ticket_thread(ticket_id, CHANNEL, parent_ts)
        record = store.create_round(ticket_id, ticket_id * 10, [("A", "m-a"), ("B", "m-b"), ("C", "m-c")])
        draft_a = next(d for d in store.drafts_for_round(record.id) if d.label == "A")
        store.save_generated(draft_a.id, "Please restart the backup.", None)
        vote_ts = f"1700000001.{ticket_id:06d}"
        store.add_draft_message(draft_a.id, CHANNEL, vote_ts)
        drafts.append((draft_a.id, parent_ts, vote_ts))
    return drafts


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int | str, float]:
    """(status or the error's name, seconds) of one POST on a connection of its own."""
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", path, body, {"Content-Length": str(len(body)), **headers})
        response = connection.getresponse()
        response.read()
        connection.close()
        status: int | str = response.status
    except OSError as exc:
        status = type(exc).__name__
    return status, time.perf_counter() - started


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def statuses(results: Iterable[tuple[int | str, float]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status, _ in results:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def run_server(kind: str, store_kind: str, tickets: int, clicks: int, webhooks: int, clients: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store.json"
        started = time.perf_counter()
        store: Any
        if store_kind == "partitioned":
            store, drafts = bulk_seeded(path, tickets)
        else:
            store = MemoryStore()
            drafts = seed(store, tickets)
        seeded_s = time.perf_counter() - started

        def authorize(**_: object) -> AuthorizeResult:  # no Slack API call
            return AuthorizeResult(enterprise_id=None, team_id="T0DEMO", bot_token="xoxb-b", bot_user_id="UB")

        poster = CountingPoster()
        bolt = new_bolt_app(None, SLACK_SECRET, verify_requests=True, authorize=authorize)
        after_ack = AfterAck()
        sending = SendFlow(store, poster, NoZendesk(), NoZendesk())  # type: ignore[arg-type]
        register_listeners(bolt, DraftActions(store, poster), after_ack, sending)  # type: ignore[arg-type]
        woken = threading.Event()

        def webhook(body: bytes, headers: dict[str, str]) -> WebhookResponse:
            return handle_zendesk_webhook(body, headers, ZENDESK_SECRET, store, woken.set)

        wsgi = DraftdeskWSGI(bolt, webhook, dict, 2_000_000, slack_signing_secret=SLACK_SECRET)
        server: WebServer | WsgirefServer = (
            WebServer(wsgi, "127.0.0.1", 0) if kind == "waitress" else WsgirefServer(wsgi, "127.0.0.1", 0)
        )
        server.start()
        try:
            return {
                "seeded_s": round(seeded_s, 1),
                "clicks": burst_of_clicks(server.port, store, after_ack, drafts, clicks),
                "webhooks": webhook_load(server.port, store, tickets, webhooks, clients),
            }
        finally:
            server.stop()
            after_ack.shutdown()
            store.close()


def burst_of_clicks(
    port: int, store: Store, after_ack: AfterAck, drafts: list[tuple[str, str, str]], count: int
) -> dict:
    step = max(1, len(drafts) // count)
    targets = [drafts[(n * step) % len(drafts)] for n in range(count)]
    bodies = [
        block_action_body(f"UAGENT{n}", CHANNEL, vote_ts, parent_ts, "rate_4", draft_id).encode()
        for n, (draft_id, parent_ts, vote_ts) in enumerate(targets)
    ]
    go = threading.Barrier(count)

    def click(body: bytes) -> tuple[int | str, float]:
        headers = signed_headers(SLACK_SECRET, body.decode(), "application/x-www-form-urlencoded")
        go.wait()
        return post(port, "/slack/events", body, headers)

    clicked_at = datetime.now(UTC) - timedelta(minutes=1)  # the votes of this burst, not the history's
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(click, bodies))
    drained = time.perf_counter()
    idle = after_ack.wait_idle(timeout=600)
    stored_after_s = time.perf_counter() - drained
    stored = {(v.draft_id, v.rater) for v in store.votes(since=clicked_at)}
    expected = {(draft_id, f"UAGENT{n}") for n, (draft_id, _, _) in enumerate(targets)}
    latencies = [seconds for _, seconds in results]
    return {
        "statuses": statuses(results),
        "latency_ms": {"p50": ms(percentile(latencies, 0.5)), "max": ms(max(latencies))},
        "all_200_within_1s": all(s == 200 and t <= 1.0 for s, t in results),
        "votes_stored_after_s": round(stored_after_s, 2) if idle else None,
        "all_votes_stored": idle and expected <= stored,
    }


def webhook_load(port: int, store: Store, tickets: int, count: int, clients: int) -> dict:
    ticket_ids = [tickets + 1 + n // 2 for n in range(count)]  # new tickets, each sent twice

    def send(ticket_id: int) -> tuple[int | str, float]:
        body = json.dumps({"ticket_id": str(ticket_id)}).encode()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(ZENDESK_SECRET, body, stamp),
            TIMESTAMP_HEADER: stamp,
        }
        return post(port, "/zendesk/webhook", body, headers)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(send, ticket_ids))
    wall = time.perf_counter() - started
    latencies = [seconds for _, seconds in results]
    queued = [job.ticket_id for job in store.jobs(JOB_QUEUED)]
    return {
        "statuses": statuses(results),
        "ack_ms": {
            "p50": ms(percentile(latencies, 0.5)),
            "p99": ms(percentile(latencies, 0.99)),
            "max": ms(max(latencies)),
        },
        "per_second": round(count / wall, 1),
        "queue_holds_exactly_the_distinct_tickets": sorted(queued) == sorted(set(ticket_ids)),
        "p99_at_most_100ms": percentile(latencies, 0.99) <= 0.1,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="waitress", help="comma-separated: waitress, wsgiref")
    parser.add_argument(
        "--store",
        choices=["partitioned", "memory"],
        default="partitioned",
        help="partitioned: the bot's store; memory: no disk",
    )
    parser.add_argument(
        "--tickets", type=int, default=73000, help="tickets in the store before the load (a year: 73,000)"
    )
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--webhooks", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8, help="webhook client threads")
    parser.add_argument(
        "--burst", type=int, metavar="TICKETS", help="instead: TICKETS new tickets through the bot"
    )
    parser.add_argument("--batch", type=int, default=100, help="with --burst: tickets per batch of webhooks")
    args = parser.parse_args(argv)
    if args.burst:
        from benchmarks.bench_http_burst import run_burst

        machine = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "cpu": cpu_description()["model"]}
        machine |= {"cores": os.cpu_count(), "python": platform.python_version()}
        print(json.dumps(machine | run_burst(args.burst, args.batch)))
        return
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is 2": a burst
    servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    if not set(servers) <= {"waitress", "wsgiref"}:
        parser.error(f"--servers: waitress and/or wsgiref, got {args.servers!r}")
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpu": cpu_description()["model"],
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "waitress": version("waitress"),
        "slack_bolt": version("slack_bolt"),
        "store": args.store,
        "tickets": args.tickets,
        "servers": {
            name: run_server(name, args.store, args.tickets, args.clicks, args.webhooks, args.clients)
            for name in servers
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
