"""`draftdesk store copy --to postgresql://…`: the TinyDB files into a real PostgreSQL database, every
record, resumable after a kill and idempotent; and the schema's versioned migrations."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from bot.store.partitioned import PartitionedStore
from bot.store.pg.copy import copy_files
from bot.store.pg.schema import migrate, migrations, schema_version
from bot.store.pg.store import PostgresStore
from core.domain import JOB_QUEUED, SEND_PENDING, Vote
from draftdesk.cli import main
from tests.test_store import T0, _assert_holds_the_v1_fixture, _v1_store, send
from tests.test_store_bursts import EXPECTED_JOBS, _format_2_store


def _config(folder: Path, store_name: str) -> Path:
    config = folder / "config.toml"
    config.write_text(f'[storage]\npath = "{store_name}"\n[[models]]\nname = "m"\nbase_model = "/nowhere"\n')
    return config


def test_a_first_version_single_file_store_arrives_whole(tmp_path, postgres_url, capsys):
    path = _v1_store(tmp_path)
    before = path.read_bytes()
    assert main(["store", "copy", "--config", str(_config(tmp_path, path.name)), "--to", postgres_url]) == 0
    assert capsys.readouterr().out.startswith("copied ")
    assert path.read_bytes() == before  # the files are read, never changed
    store = PostgresStore(postgres_url)
    try:
        _assert_holds_the_v1_fixture(store)
        assert store.requeue_interrupted_jobs() == 1  # the job the stopped bot left running: queued
    finally:
        store.close()


def test_a_format_2_store_arrives_and_its_dropped_last_job_id_is_not_given_again(tmp_path, postgres_url):
    path = _format_2_store(tmp_path)
    config = _config(path.parent, path.name)
    assert main(["store", "copy", "--config", str(config), "--to", postgres_url]) == 0
    store = PostgresStore(postgres_url)
    try:
        assert [(j.id, j.ticket_id, j.status) for j in store.jobs()] == EXPECTED_JOBS
        assert store.draft_by_message("C0DESK", "1772442001.000200").id == "t1r1B"
        assert store.enqueue(9, "poll") and store.jobs(JOB_QUEUED)[-1].id == 9  # 8 was dropped
    finally:
        store.close()


def _store_with_history(path: Path) -> PartitionedStore:
    """Three ticket parts (tickets 1, 30, 60), with drafts posted, votes, a send, a queue."""
    store = PartitionedStore(path)
    for ticket in (1, 30, 60):
        store.save_ticket_thread(ticket, "C1", f"{1772442000 + ticket}.000100")
        store.save_ticket_contact(ticket, f"Customer {ticket}", f"c{ticket}@example.com")
        round_ = store.create_round(ticket, 10, [("A", "m1"), ("B", "m2")])
        for label in "AB":
            store.save_generated(f"{round_.id}{label}", f"Answer {label}", None, "v1", "prompt")
            store.add_draft_message(f"{round_.id}{label}", "C1", f"{1772442100 + ticket}.00{ord(label)}")
        store.mark_round_posted(round_.id)
        store.record_vote(Vote(ticket, f"{round_.id}A", "m1", "U1", 4, "button", T0 + timedelta(days=ticket)))
    store.record_send(send())
    store.enqueue(99, "poll", now=T0)
    store.set_meta("poll_cursor", "abc")
    return store


def _same(a, b) -> None:
    for ticket in (1, 30, 60):
        assert a.drafts_for_ticket(ticket) == b.drafts_for_ticket(ticket) and a.drafts_for_ticket(ticket)
        assert a.ticket_thread(ticket) == b.ticket_thread(ticket)
        assert a.ticket_contact(ticket) == b.ticket_contact(ticket)
        assert a.round_for(ticket, 10) == b.round_for(ticket, 10)
    assert a.votes() == b.votes() and len(a.votes()) == 3
    assert a.jobs() == b.jobs() and a.get_meta("poll_cursor") == b.get_meta("poll_cursor") == "abc"
    assert a.pending_sends() == b.pending_sends() and a.pending_sends()[0].state == SEND_PENDING
    assert b.draft_by_message("C1", "1772442130.0065").id == "t30r1A"


def test_a_copy_killed_halfway_goes_on_and_a_second_copy_changes_nothing(tmp_path, postgres_url, capsys):
    path = tmp_path / "draftdesk.json"
    _store_with_history(path).close()
    target = PostgresStore(postgres_url)

    class Killed(Exception):
        pass

    def kill_after_two(_, done, total):
        if done == 2:
            raise Killed

    with target.connection() as conn, pytest.raises(Killed):
        copy_files(path, path.with_name(path.name + ".d"), conn, kill_after_two)
    assert len(target.votes()) < 3 or not target.jobs()  # stopped before the end
    config = _config(tmp_path, path.name)
    assert main(["store", "copy", "--config", str(config), "--to", postgres_url]) == 0
    first = capsys.readouterr().out
    assert "(2 part(s) copied before, skipped)" in first
    assert main(["store", "copy", "--config", str(config), "--to", postgres_url]) == 0
    assert "(6 part(s) copied before, skipped)" in capsys.readouterr().out
    source = PartitionedStore(path, read_only=True)
    try:
        _same(source, target)
        assert [j.status for j in target.jobs()] == [JOB_QUEUED]
        assert target.enqueue(100, "poll") and max(j.id for j in target.jobs()) == 2  # ids go on
    finally:
        source.close()
        target.close()


def test_a_copy_from_files_the_bot_is_writing_is_refused_in_one_line(tmp_path, postgres_url, capsys):
    path = tmp_path / "draftdesk.json"
    running = _store_with_history(path)  # holds the writer lock, as `draftdesk run` does
    try:
        config = _config(tmp_path, path.name)
        assert main(["store", "copy", "--config", str(config), "--to", postgres_url]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "stop `draftdesk run` first" in err
    finally:
        running.close()
    assert main(["store", "copy", "--config", str(config), "--to", "mysql://u:pw@db/x"]) == 2
    assert capsys.readouterr().err == (
        "draftdesk: store copy: --to must start with postgresql:// (got 'mysql://u:***@db/x')\n"
    )


def test_the_schema_is_migrated_once_by_replicas_starting_together(postgres_url):
    newest = migrations()[-1].version
    with psycopg.connect(postgres_url) as conn:
        assert schema_version(conn) == 0
    stores = []
    start = threading.Barrier(3)

    def open_one():
        start.wait()
        stores.append(PostgresStore(postgres_url))

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(stores) == 3
        with psycopg.connect(postgres_url) as conn:
            assert schema_version(conn) == newest
            rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        assert rows == [(m.version, m.name) for m in migrations()]
    finally:
        for store in stores:
            store.close()


def test_a_database_of_an_older_schema_is_migrated_at_open_and_keeps_its_rows(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        assert migrate(conn, upto=1) == [1]  # as the first release with PostgreSQL left it
        conn.execute(
            "INSERT INTO rounds (id, ticket_id, comment_id, number, status)"
            " VALUES ('t5r1', 5, 11, 1, 'posted')"
        )
        conn.execute(
            "INSERT INTO drafts (id, round_id, ticket_id, round_number, label, model)"
            " VALUES ('t5r1A', 't5r1', 5, 1, 'A', 'm1')"
        )
    store = PostgresStore(postgres_url)  # `draftdesk run` of the new version
    try:
        assert store.round_for(5, 11).language is None and store.draft("t5r1A").language is None
        assert store.create_round(5, 12, [("A", "m1")], language="de").language == "de"
        with psycopg.connect(postgres_url) as conn:
            assert schema_version(conn) == migrations()[-1].version == 2
            assert migrate(conn) == []  # current: nothing to do
    finally:
        store.close()
