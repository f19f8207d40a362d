"""`draftdesk backup` and `restore` with a PostgreSQL store: PostgreSQL's own ``pg_dump`` and
``pg_restore`` (custom format), when they are on PATH; otherwise one line that says so.

The password never reaches a command line (``ps`` shows those): it goes to the tools in
``PGPASSWORD``; what is printed names the database with its password masked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.db_url import masked
from core.files import replace_atomically

TOOLS_HINT = (
    "install PostgreSQL's client tools (the server's major version or newer: apt install "
    "postgresql-client), or back the database up with your own tools"
)


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        print(f"draftdesk: {name} is not on PATH: {TOOLS_HINT}", file=sys.stderr)
    return found


def _target(url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, the environment with PGPASSWORD when the URL has one)."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env  # type: ignore[arg-type]


def _failed(tool: str, url: str, returncode: int, stderr: str) -> int:
    lines = [line for line in stderr.splitlines() if line.strip()]
    why = masked(lines[0]) if lines else f"exit status {returncode}"
    print(f"draftdesk: {tool} of {masked(url)} failed: {why}", file=sys.stderr)
    return 2


def backup_database(url: str, output: Path) -> int:
    """The whole database in ``output`` (pg_dump's custom format: `pg_restore` reads it), written
    whole or not at all, readable by its owner only."""
    pg_dump = _tool("pg_dump")
    if pg_dump is None:
        return 2
    conninfo, env = _target(url)

    def write(handle: BinaryIO) -> None:
        result = subprocess.run(
            [pg_dump, "--format=custom", "--no-owner", f"--dbname={conninfo}"],
            stdout=handle,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
        if result.returncode != 0:  # nothing replaces the output: the temporary file goes
            raise _DumpFailed(result.returncode, result.stderr.decode("utf-8", "replace"))

    try:
        replace_atomically(output, write)
    except _DumpFailed as failed:
        return _failed("pg_dump", url, failed.returncode, failed.stderr)
    size = output.stat().st_size
    print(
        f"backup of {masked(url)} written to {output} (pg_dump custom format, {size / 1e6:.1f} MB). "
        f"To restore: stop the replicas, `draftdesk restore {output}`, start them."
    )
    return 0


class _DumpFailed(Exception):
    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(stderr)
        self.returncode = returncode
        self.stderr = stderr


def restore_database(url: str, archive: Path) -> int:
    """``archive`` (from `draftdesk backup`) back into the database: its tables replaced."""
    if not archive.is_file():
        print(f"draftdesk: restore: no file {archive}", file=sys.stderr)
        return 2
    pg_restore = _tool("pg_restore")
    if pg_restore is None:
        return 2
    conninfo, env = _target(url)
    result = subprocess.run(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={conninfo}",
            str(archive),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        return _failed("pg_restore", url, result.returncode, result.stderr)
    print(f"restored {archive} into {masked(url)}: start the replicas")
    return 0
