"""`draftdesk doctor` with `[storage] url`: the server answers and how far its schema is, against a
real server; an unreachable one fails in one line with its password masked. Nothing is changed."""

from __future__ import annotations

from bot.config import parse_settings
from bot.store.pg.schema import migrations
from bot.store.pg.store import PostgresStore
from draftdesk.commands.doctor import FAIL, OK, _database
from tests.test_config import ALL_SECRETS, minimal


def settings_for(url: str):
    return parse_settings(minimal(), {**ALL_SECRETS, "DRAFTDESK_DATABASE_URL": url})


def test_the_database_check_says_how_far_the_schema_is(postgres_url):
    empty = _database(settings_for(postgres_url))
    assert empty.status == OK and empty.detail.endswith("empty: `draftdesk run` creates the schema")
    assert "PostgreSQL 18." in empty.detail
    PostgresStore(postgres_url).close()  # what `draftdesk run` does first
    newest = migrations()[-1].version
    current = _database(settings_for(postgres_url))
    assert current.status == OK and current.detail.endswith(f"schema {newest} of {newest} (current)")


def test_an_unreachable_database_fails_the_check_without_its_password(tmp_path):
    check = _database(settings_for(f"postgresql://bot:s3cret@/draftdesk?host={tmp_path}"))
    assert check.status == FAIL and check.detail.startswith("postgresql://bot:***@/draftdesk")
    assert "s3cret" not in check.detail and "\n" not in check.detail
