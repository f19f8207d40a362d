"""`draftdesk jobs`: list, retry and drop against the store's files, and refused (one line, nothing
changed) while another process, such as `draftdesk run`, has the store open for writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from bot.partitioned_store import PartitionedStore, open_store
from core.domain import JOB_FAILED, JOB_QUEUED, utcnow
from draftdesk.cli import main

T0 = utcnow() - timedelta(hours=2)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[storage]\npath = "store.json"\n[[models]]\nname = "m"\nbase_model = "/nowhere"\n')
    store = PartitionedStore(tmp_path / "store.json")
    for ticket in (11, 12, 13):
        store.enqueue(ticket, "webhook", now=T0)
    for _ in range(2):  # tickets 11 and 12 fail for good
        job = store.claim_next_job()
        store.fail_job(job.id, "Zendesk answered HTTP 503")
    store.close()
    return path


def jobs(path: Path) -> dict[int, tuple[str, int]]:
    store = open_store(path.parent / "store.json", read_only=True)
    try:
        return {j.ticket_id: (j.status, j.attempts) for s in (JOB_QUEUED, JOB_FAILED) for j in store.jobs(s)}
    finally:
        store.close()


def test_list_shows_the_queue_as_a_table_or_json(config: Path, capsys) -> None:
    assert main(["jobs", "list", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["id", "ticket", "status", "tries", "source"]
    assert [line.split()[1:4] for line in lines[1:]] == [
        ["11", "failed", "1"],
        ["12", "failed", "1"],
        ["13", "queued", "0"],
    ]
    assert "Zendesk answered HTTP 503" in lines[1]
    assert main(["jobs", "list", "--status", "failed", "--format", "json", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["ticket_id"], r["status"], r["last_error"]) for r in rows] == [
        (11, "failed", "Zendesk answered HTTP 503"),
        (12, "failed", "Zendesk answered HTTP 503"),
    ]


def test_retry_one_then_every_failed_job_and_drop(config: Path, capsys) -> None:
    assert main(["jobs", "retry", "1", "--config", str(config)]) == 0
    assert "job 1 (ticket 11) back in the queue" in capsys.readouterr().out
    assert jobs(config) == {11: ("queued", 0), 12: ("failed", 1), 13: ("queued", 0)}
    assert main(["jobs", "retry", "--failed", "--config", str(config)]) == 0
    assert jobs(config) == {11: ("queued", 0), 12: ("queued", 0), 13: ("queued", 0)}
    assert main(["jobs", "drop", "3", "--config", str(config)]) == 0
    assert jobs(config) == {11: ("queued", 0), 12: ("queued", 0)}


def test_mistakes_are_one_line_and_change_nothing(config: Path, capsys) -> None:
    before = jobs(config)
    assert main(["jobs", "retry", "99", "--config", str(config)]) == 2
    assert main(["jobs", "drop", "99", "--config", str(config)]) == 2
    assert main(["jobs", "retry", "--config", str(config)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "draftdesk: job 99 is not in the queue (finished, dropped, or a wrong id)",
        "draftdesk: job 99 is not in the queue (finished, dropped, or a wrong id)",
        "draftdesk: give a job id or --failed (not both)",
    ]
    assert jobs(config) == before


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bot.partitioned_store import PartitionedStore
    store = PartitionedStore(Path(sys.argv[1]))
    print("open", flush=True)
    time.sleep(120)
    """
)


def test_a_store_open_for_writing_elsewhere_is_refused_until_that_process_is_gone(config: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(config.parent / "store.json")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        cli = [sys.executable, "-m", "draftdesk.cli", "jobs"]
        refused = subprocess.run(
            [*cli, "retry", "--failed", "--config", str(config)], capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        [line] = refused.stderr.splitlines()
        assert (
            f"open for writing by another process (pid {holder.pid})" in line
            and "stop `draftdesk run`" in line
        )
        assert jobs(config)[11] == ("failed", 1)  # nothing changed
        listed = subprocess.run(
            [*cli, "list", "--config", str(config)], capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 4  # reading works meanwhile
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the kernel drops a killed process's lock
        holder.wait(timeout=10)
    retried = subprocess.run(
        [*cli, "retry", "--failed", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert retried.returncode == 0, retried.stderr
    assert jobs(config)[11] == ("queued", 0)
