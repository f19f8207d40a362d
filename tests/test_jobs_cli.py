"""`draftdesk jobs`: list, retry and drop against the store's files; while `draftdesk run` has the
store open for writing, carried out by the bot; refused (one line, nothing changed) while another
process has it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.store.job_actions import RETRY_FAILED
from bot.store.partitioned import PartitionedStore, open_store
from bot.store.requests import SNAPSHOT, NoBotAnswered, StoreRequest, StoreRequests, ask, requests_dir
from core.domain import JOB_FAILED, JOB_QUEUED, utcnow
from draftdesk.app import build
from draftdesk.cli import main
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from tests.test_observability import SECRETS, WordsBackend, write_config
from tests.waiting import drafts_posted, wait_until

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
    from bot.store.partitioned import PartitionedStore
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
        assert f"open for writing by another process (pid {holder.pid})" in line
        assert line.endswith(
            "it takes no requests now (a bot still loading its models, or another command): "
            "try again in a minute, or stop it first"
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


def test_while_the_bot_runs_retry_and_drop_are_carried_out_by_it(tmp_path: Path, capsys) -> None:
    """Restarting the bot to retry a job would reload every model: the bot takes the request."""
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        config = write_config(tmp_path, slack, zendesk)  # one attempt per job: a missing ticket fails
        app = build(load_settings(config, env=SECRETS), WordsBackend())
        app.start()
        try:
            for ticket in (8, 9):
                app.store.enqueue(ticket, "webhook")
            app.worker.wake.set()
            wait_until(lambda: len(app.store.jobs(JOB_FAILED)) == 2, 30, "tickets 8 and 9 failed")
            failed = {job.ticket_id: job.id for job in app.store.jobs(JOB_FAILED)}
            zendesk.add_ticket(8, "Backup stuck", 100, comments=[(100, "My backup is stuck.", True)])
            assert main(["jobs", "retry", str(failed[8]), "--config", str(config)]) == 0
            assert capsys.readouterr().out == f"job {failed[8]} (ticket 8) back in the queue, due now\n"
            wait_until(lambda: drafts_posted(app.store, 8), 30, "ticket 8 drafted once retried")
            assert main(["jobs", "drop", str(failed[9]), "--config", str(config)]) == 0
            assert capsys.readouterr().out == f"job {failed[9]} (ticket 9, failed) dropped\n"
            assert app.store.jobs(JOB_FAILED) == []
            assert main(["jobs", "retry", "999", "--config", str(config)]) == 2
            assert capsys.readouterr().err == (
                "draftdesk: job 999 is not in the queue (finished, dropped, or a wrong id)\n"
            )
            answers = [p.name for p in requests_dir(tmp_path / "store.json").iterdir()]
            assert answers == ["serving"]  # every answer taken, none left
        finally:
            app.stop()


def test_a_request_the_bot_does_not_take_is_withdrawn_and_changes_nothing(config: Path) -> None:
    store_path = config.parent / "store.json"
    folder = requests_dir(store_path)
    folder.mkdir()
    with pytest.raises(NoBotAnswered, match="takes no requests now"):  # no bot says it serves: at once
        ask(store_path, StoreRequest(RETRY_FAILED), 2)
    (folder / "serving").touch()  # a bot that says it serves, but is stuck
    ticks = iter(range(100))
    with pytest.raises(NoBotAnswered, match="did not take the request within 2 s, so nothing changed"):
        ask(store_path, StoreRequest(RETRY_FAILED), 2, monotonic=lambda: next(ticks), sleep=lambda _: None)
    assert [p.name for p in folder.iterdir()] == ["serving"]  # withdrawn: a bot waking later does nothing

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while waiting withdraws the request too
        ask(store_path, StoreRequest(RETRY_FAILED), 2, sleep=interrupted)
    assert [p.name for p in folder.iterdir()] == ["serving"]
    assert jobs(config)[11] == ("failed", 1)
    with pytest.raises(SystemExit):
        main(["jobs", "retry", "--failed", "--wait", "nan", "--config", str(config)])


def test_the_bot_answers_unreadable_requests_and_drops_stale_ones(config: Path) -> None:
    store_path = config.parent / "store.json"
    store = PartitionedStore(store_path)
    woken: list[bool] = []
    folder = requests_dir(store_path)
    try:
        serving = StoreRequests(store_path, store, lambda: woken.append(True), snapshot=store.snapshot)
        assert serving.open()
        (folder / "c.taken").write_text('{"action": "drop", "job_id": 1}')  # a bot killed mid-request
        (folder / "e.request").write_text('{"action": "drop", "job_id": 1}')  # its command long gone
        assert serving.open()  # as at the next start
        assert json.loads((folder / "e.answer").read_text())["message"].startswith("not carried out")
        (folder / "a.request").write_text('{"action": "retry", "job_id": "1; rm -rf /"}')
        (folder / "b.request").write_text('{"action": "retry_failed", "deadline": 0}')  # gave up long ago
        (folder / "d.request").write_text('{"action": "snapshot", "folder": "../../etc/x"}')  # not beside
        assert serving.serve_pending() == 2
        for name in ("a", "d"):
            answer = json.loads((folder / f"{name}.answer").read_text())
            assert answer["ok"] is False and answer["message"].startswith("unreadable request")
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["a.answer", "d.answer", "e.answer", "serving"] and woken == []
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        store.close()
    assert jobs(config)[11] == ("failed", 1)


def test_only_the_stores_owner_may_change_it(config: Path, capsys, monkeypatch) -> None:
    """Root's files in the store would lock the bot's user out of it at its next start."""
    owner = (config.parent / "store.json").stat().st_uid
    monkeypatch.setattr("draftdesk.commands.store_access.os.geteuid", lambda: owner + 1)
    assert main(["jobs", "retry", "--failed", "--config", str(config)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"draftdesk: {config.parent / 'store.json'} belongs to ")
    assert "run the command as that user (sudo -u " in line
    assert jobs(config)[11] == ("failed", 1)


def test_interrupted_after_the_bot_took_it_the_operator_is_told_it_goes_ahead(config: Path) -> None:
    store_path = config.parent / "store.json"
    folder = requests_dir(store_path)
    folder.mkdir()
    (folder / "serving").touch()

    def taken_then_interrupted(_: float) -> None:
        for pending in folder.glob("*.request"):
            pending.rename(pending.with_suffix(".taken"))  # the bot takes it
        raise KeyboardInterrupt

    with pytest.raises(NoBotAnswered, match="interrupted after the bot took the request: it is carried out"):
        ask(store_path, StoreRequest(RETRY_FAILED), 5, sleep=taken_then_interrupted)


def test_the_bot_says_it_serves_while_a_long_request_runs(config: Path, monkeypatch) -> None:
    """A year's snapshot takes seconds: a `jobs retry` meanwhile is queued, not told "no bot"."""
    monkeypatch.setattr("bot.store.requests.SERVING_STALE_SECONDS", 2.5)
    store_path = config.parent / "store.json"
    store = PartitionedStore(store_path)
    release, linking = threading.Event(), threading.Event()

    def slow_snapshot(target: Path) -> int:
        linking.set()
        release.wait(20)
        return store.snapshot(target)

    serving = StoreRequests(store_path, store, lambda: None, snapshot=slow_snapshot)
    stop = threading.Event()
    runner = threading.Thread(target=serving.run, args=(stop,))
    runner.start()
    try:
        wait_until(lambda: (requests_dir(store_path) / "serving").exists(), 10, "the bot serving")
        backup = threading.Thread(
            target=lambda: ask(store_path, StoreRequest(SNAPSHOT, folder="store.json.snapshot-x"), 30)
        )
        backup.start()
        linking.wait(10)
        time.sleep(4)  # longer than the heartbeat may be silent: the request is still running
        retried: list[object] = []
        asking = threading.Thread(
            target=lambda: retried.append(ask(store_path, StoreRequest(RETRY_FAILED), 20))
        )
        asking.start()
        release.set()
        backup.join(30)
        asking.join(30)
        assert retried and retried[0].ok and retried[0].message == "2 failed job(s) back in the queue"
    finally:
        release.set()
        stop.set()
        runner.join(10)
        store.close()
    assert not (requests_dir(store_path) / "serving").exists()  # stopped: commands are told at once


def test_list_reads_a_store_still_in_the_single_file_layout_without_changing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Upgraded, not yet run: `jobs list` answers from a migrated copy and leaves the file as it was."""
    old = Path(__file__).parent / "fixtures" / "store" / "single_file_v1.json"
    (tmp_path / "store.json").write_bytes(old.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text('[storage]\npath = "store.json"\n[[models]]\nname = "m"\nbase_model = "/nowhere"\n')
    assert main(["jobs", "list", "--config", str(config)]) == 0
    printed = capsys.readouterr()
    rows = [line.split()[:3] for line in printed.out.splitlines()[1:]]
    assert rows == [["2", "102", "failed"], ["3", "103", "running"], ["4", "104", "queued"]]
    assert "zendesk: 404 ticket not found" in printed.out
    assert "single-file layout" in caplog.text and printed.err == ""
    assert (tmp_path / "store.json").read_bytes() == old.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "store.json"]
