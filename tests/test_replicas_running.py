"""Two `draftdesk run` replicas, whole (Bolt, web server, worker, digest), on one PostgreSQL database
(a real server), with the Slack and Zendesk stand-ins: a webhook delivered to both is drafted and
posted once, votes land through either, each answers /healthz; and the commands that read or change
the queue work on the database beside them."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from bot.config import load_settings
from core.domain import JOB_FAILED, utcnow
from draftdesk.app import build
from draftdesk.cli import main
from integrations.standins.slack_requests import block_action_body, signed_headers
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from tests.test_observability import CHANNEL, SECRETS, WordsBackend, webhook, write_config
from tests.waiting import drafts_posted, wait_until


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str, monkeypatch):
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        zendesk.add_ticket(7, "Backup stuck", 100, comments=[(100, "My backup is stuck at 99%.", True)])
        config = write_config(tmp_path, slack, zendesk)
        env = {**SECRETS, "DRAFTDESK_DATABASE_URL": postgres_url}
        monkeypatch.setenv("DRAFTDESK_DATABASE_URL", postgres_url)  # the commands read it too
        apps = [build(load_settings(config, env=env), WordsBackend()) for _ in range(2)]
        for app in apps:
            app.start()
        try:
            yield apps, slack, config
        finally:
            for app in apps:
                app.stop()
        assert not (tmp_path / "store.json").exists()  # with a database, no store file on disk


def test_a_ticket_delivered_to_both_replicas_is_drafted_and_posted_once(replicas):
    apps, slack, _ = replicas
    bases = [f"http://127.0.0.1:{app.web.port}" for app in apps]
    assert len(set(bases)) == 2
    answers: list[int] = []
    start = threading.Barrier(2)

    def deliver(base: str) -> None:
        start.wait()
        answers.append(webhook(base, b'{"ticket_id": "7"}').status_code)

    threads = [threading.Thread(target=deliver, args=(base,)) for base in bases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200]
    store = apps[0].store
    wait_until(lambda: drafts_posted(store, 7), timeout=60, what="ticket 7 drafted")
    channel, parent_ts = store.ticket_thread(7)
    parents = [m for m in slack.messages[channel] if not m.get("thread_ts")]
    assert len(parents) == 1  # one thread for the ticket
    replies = slack.replies(channel, parent_ts)
    drafts = store.drafts_for_ticket(7)
    assert len(replies) == len(drafts) == 3  # one message per draft, across both replicas
    # The second delivery joined the queued job, or (the first already claimed) ran after it and
    # found the drafts posted: never two at once, never a second round.
    assert len(store.jobs("done")) in (1, 2) and {d.round_number for d in drafts} == {1}

    # Votes through either replica, into one table.
    for rater, base in zip(("UAGENT1", "UAGENT2"), bases, strict=True):
        draft = drafts[0]
        click = block_action_body(rater, channel, draft.vote_ts, parent_ts, "rate_4", draft.id)
        headers = signed_headers(SECRETS["SLACK_SIGNING_SECRET"], click, "application/x-www-form-urlencoded")
        assert requests.post(f"{base}/slack/events", data=click.encode(), headers=headers, timeout=10).ok
    wait_until(lambda: len(store.votes()) == 2, timeout=10, what="both votes stored")
    assert {v.rater for v in apps[1].store.votes()} == {"UAGENT1", "UAGENT2"}
    replicas = set()
    for base in bases:  # each replica answers for itself, the database part included
        health = requests.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        database = health.json()["checks"]["database"]
        assert database["ok"] and database["detail"].startswith("reachable; replica ")
        replicas.add(database["detail"].split()[2])
    assert len(replicas) == 2


def test_jobs_commands_work_on_the_database_beside_the_replicas(replicas, capsys):
    apps, _, config = replicas
    store = apps[0].store
    store.enqueue(404, "webhook")  # no such ticket: fails for good at once (max_attempts = 1)
    apps[0].worker.wake.set()
    wait_until(lambda: store.jobs(JOB_FAILED), timeout=30, what="ticket 404 failed")
    [failed] = store.jobs(JOB_FAILED)
    assert main(["jobs", "list", "--config", str(config), "--format", "json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(row["id"], row["ticket_id"], row["status"]) for row in listed] == [(failed.id, 404, "failed")]
    running = apps[1].store
    tomorrow = utcnow() + timedelta(days=1)  # due for this claim only, not for the replicas' workers
    running.enqueue(405, "webhook", now=tomorrow)
    claimed = running.claim_next_job(tomorrow)
    assert main(["jobs", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"job {claimed.id} runs on replica {running.replica} (its claim lasts until " in out
    running.finish_job(claimed.id)
    assert main(["jobs", "drop", str(failed.id), "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"job {failed.id} (ticket 404, failed) dropped\n"
    assert apps[1].store.jobs(JOB_FAILED) == []
    assert main(["jobs", "retry", "999", "--config", str(config)]) == 2
    assert (
        capsys.readouterr().err
        == "draftdesk: job 999 is not in the queue (finished, dropped, or a wrong id)\n"
    )


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path, capsys, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[[models]]\nname = "m"\nbase_model = "/nowhere"\n')
    socket_dir = tmp_path / "no-server-here"
    socket_dir.mkdir()
    monkeypatch.setenv("DRAFTDESK_DATABASE_URL", f"postgresql://bot:s3cret@/draftdesk?host={socket_dir}")
    assert main(["votes", "export", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("draftdesk: cannot use the PostgreSQL database postgresql://bot:***@/draftdesk")
    assert "s3cret" not in err and len(err.strip().splitlines()) == 1
    assert CHANNEL not in err
