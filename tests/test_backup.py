"""`draftdesk backup`: one archive of the whole store, consistent even while the bot writes, taken by
the running bot's own store (no restart) or by the command on a free store."""

from __future__ import annotations

import re
import stat
import tarfile
import threading
from pathlib import Path

from bot.config import load_settings
from bot.store.partitioned import PartitionedStore, history_folder, open_store
from bot.store.requests import requests_dir
from core.domain import Vote, utcnow
from draftdesk.app import build
from draftdesk.cli import main
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from tests.test_observability import SECRETS, WordsBackend, write_config
from tests.waiting import drafts_posted, wait_until


def rated_round(store: PartitionedStore, ticket: int) -> None:
    store.create_round(ticket, 10 * ticket, [("A", "m1"), ("B", "m2")])
    store.save_generated(f"t{ticket}r1A", f"reply {ticket}", None)
    store.add_draft_message(f"t{ticket}r1A", "CDRAFTS", f"{1_700_000_000 + ticket}.000100")
    store.record_vote(Vote(ticket, f"t{ticket}r1A", "m1", "U1", 4, "button", utcnow()))


def store_with_config(folder: Path, *tickets: int) -> Path:
    """A store of rated rounds of ``tickets`` in ``folder`` and a config naming it; the config."""
    store = PartitionedStore(folder / "store.json")
    for ticket in tickets:
        rated_round(store, ticket)
    store.close()
    config = folder / "config.toml"
    config.write_text('[storage]\npath = "store.json"\n[[models]]\nname = "m1"\nbase_model = "/nowhere"\n')
    return config


def voted_drafts(path: Path) -> list[str]:
    """The draft ids voted on in the store at ``path``, sorted (opened read-only)."""
    store = open_store(path, read_only=True)
    try:
        return sorted(v.draft_id for v in store.votes())
    finally:
        store.close()


def restored(archive: Path, into: Path) -> PartitionedStore:
    into.mkdir()
    with tarfile.open(archive) as opened:
        opened.extractall(into, filter="data")
    return open_store(into / "store.json", read_only=True)  # type: ignore[return-value]


def test_a_snapshot_keeps_its_moment_while_the_store_writes_on(tmp_path: Path) -> None:
    store = PartitionedStore(tmp_path / "store.json")
    try:
        for ticket in range(1, 60):  # three ticket parts
            rated_round(store, ticket)
        writing, stop = threading.Event(), threading.Event()

        def vote_on() -> None:  # the bot keeps recording votes while the snapshot is taken
            ticket = 100
            while not stop.is_set():
                rated_round(store, ticket)
                writing.set()
                ticket += 1

        voter = threading.Thread(target=vote_on)
        voter.start()
        writing.wait(10)
        files = store.snapshot(tmp_path / "snap")
        stop.set()
        voter.join()
        rated_round(store, 999)
    finally:
        store.close()
    copy = open_store(tmp_path / "snap" / "store.json", read_only=True)
    try:
        votes = copy.votes()
        assert files > 3 and len(votes) >= 60
        assert all(copy.draft(v.draft_id) is not None for v in votes)  # never a vote without its draft
        assert copy.draft("t999r1A") is None  # written after the snapshot
    finally:
        copy.close()


def test_backup_of_a_free_store_restores_whole(tmp_path: Path, capsys) -> None:
    store = PartitionedStore(tmp_path / "store.json")
    for ticket in (1, 2, 30):
        rated_round(store, ticket)
    store.enqueue(5, "webhook")
    store.close()
    config = tmp_path / "config.toml"
    config.write_text('[storage]\npath = "store.json"\n[[models]]\nname = "m1"\nbase_model = "/nowhere"\n')
    archive = tmp_path / "backup.tar.gz"
    assert main(["backup", "--output", str(archive), "--config", str(config)]) == 0
    said = capsys.readouterr().out
    assert f"written to {archive}" in said and f"`draftdesk restore {archive}`" in said
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # customers' tickets: the owner's only
    assert sorted(p.name for p in tmp_path.iterdir() if ".snapshot-" in p.name) == []  # removed
    copy = restored(archive, tmp_path / "restored")
    try:
        assert sorted(v.draft_id for v in copy.votes()) == ["t1r1A", "t2r1A", "t30r1A"]
        assert [j.ticket_id for j in copy.jobs("queued")] == [5]
        assert copy.draft_by_message("CDRAFTS", "1700000030.000100").id == "t30r1A"
    finally:
        copy.close()

    assert main(["backup", "--output", str(tmp_path), "--config", str(config)]) == 2
    assert main(["backup", "--output", str(tmp_path / "no" / "b.tgz"), "--config", str(config)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0].startswith(f"draftdesk: --output {tmp_path} is a folder: give a file name")
    assert errors[1] == f"draftdesk: --output: no folder {tmp_path / 'no'}: create it first"


def test_backup_while_the_bot_runs_is_taken_by_the_bot(tmp_path: Path, capsys) -> None:
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        zendesk.add_ticket(7, "Backup stuck", 100, comments=[(100, "My backup is stuck.", True)])
        config = write_config(tmp_path, slack, zendesk)
        app = build(load_settings(config, env=SECRETS), WordsBackend())
        app.start()
        try:
            app.store.enqueue(7, "webhook")
            app.worker.wake.set()
            wait_until(lambda: drafts_posted(app.store, 7), 30, "ticket 7 drafted")
            archive = tmp_path / "running.tar.gz"
            assert main(["backup", "--output", str(archive), "--config", str(config)]) == 0
            assert [p.name for p in requests_dir(tmp_path / "store.json").iterdir()] == [
                "serving"
            ]  # answered
            assert app.store.drafts_for_ticket(7)  # and runs on
        finally:
            app.stop()
    copy = restored(archive, tmp_path / "restored")
    try:
        drafts = copy.drafts_for_ticket(7)
        assert sorted(d.text for d in drafts) == [
            f"Draft reply from {m} here" for m in ("alpha", "beta", "gamma")
        ]
        assert copy.ticket_thread(7) is not None and all(d.slack_ts for d in drafts)
    finally:
        copy.close()


def test_the_second_pass_takes_what_was_replaced_added_or_removed_after_the_first(tmp_path: Path) -> None:
    store = PartitionedStore(tmp_path / "store.json")
    try:
        rated_round(store, 1)
        (tmp_path / "snap").mkdir()
        first = store._link_replaced(tmp_path / "snap", {})
        rated_round(store, 2)  # replaces ticket part 0 and its votes, adds a message file
        rated_round(store, 60)  # a new ticket part
        extra = history_folder(tmp_path / "store.json") / "misc.json"
        extra.write_text("{}")
        second = store._link_replaced(tmp_path / "snap", first)
        extra.unlink()
        third = store._link_replaced(tmp_path / "snap", second)
    finally:
        store.close()
    assert set(third) == set(second) - {"store.json.d/misc.json"}
    assert not (tmp_path / "snap" / "store.json.d" / "misc.json").exists()
    assert voted_drafts(tmp_path / "snap" / "store.json") == ["t1r1A", "t2r1A", "t60r1A"]


def test_backups_into_a_folder_keep_the_newest(tmp_path: Path, capsys) -> None:
    config = store_with_config(tmp_path, 1)
    folder = tmp_path / "backups"
    folder.mkdir()
    for day in ("20261101T000000Z", "20261102T000000Z", "20261103T000000Z"):
        (folder / f"draftdesk-{day}.tar.gz").write_bytes(b"old")
    (folder / "notes.txt").write_text("not a backup: stays")
    assert main(["backup", "--into", str(folder), "--keep", "2", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    kept = sorted(p.name for p in folder.iterdir())
    assert kept[0] == "draftdesk-20261103T000000Z.tar.gz" and kept[-1] == "notes.txt" and len(kept) == 3
    assert kept[1].startswith("draftdesk-2") and kept[1] in out  # the new one, written
    assert "removed the older backup" in out and "draftdesk-20261101T000000Z" in out
    copy = restored(folder / kept[1], tmp_path / "restored")
    try:
        assert [v.draft_id for v in copy.votes()] == ["t1r1A"]
    finally:
        copy.close()
    assert main(["backup", "--output", str(tmp_path / "x.tgz"), "--keep", "2", "--config", str(config)]) == 2
    assert "--keep N (N ≥ 1) goes with --into FOLDER" in capsys.readouterr().err


def test_restore_puts_a_backup_back_and_keeps_the_store_it_replaces(tmp_path: Path, capsys) -> None:
    source = tmp_path / "old-box" / "draftdesk.json"  # another machine, another store name
    source.parent.mkdir()
    store = PartitionedStore(source)
    for ticket in (1, 2):
        rated_round(store, ticket)
    store.close()
    archive = tmp_path / "backup.tar.gz"
    config = source.parent / "config.toml"
    config.write_text(
        '[storage]\npath = "draftdesk.json"\n[[models]]\nname = "m1"\nbase_model = "/nowhere"\n'
    )
    assert main(["backup", "--output", str(archive), "--config", str(config)]) == 0

    here = tmp_path / "new-box"
    here.mkdir()
    (here / "config.toml").write_text(
        '[storage]\npath = "store.json"\n[[models]]\nname = "m1"\nbase_model = "/x"\n'
    )
    current = PartitionedStore(here / "store.json")
    rated_round(current, 9)
    holder = current  # the bot, still running
    assert main(["restore", str(archive), "--config", str(here / "config.toml")]) == 2
    assert "stop the bot first" in capsys.readouterr().err
    holder.close()

    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    assert main(["restore", str(tmp_path / "junk.tar.gz"), "--config", str(here / "config.toml")]) == 2
    assert capsys.readouterr().err.startswith("draftdesk: cannot read")
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as other:
        other.add(here / "config.toml", arcname="etc/passwd")
    assert main(["restore", str(tmp_path / "other.tar.gz"), "--config", str(here / "config.toml")]) == 2
    assert "is not an archive `draftdesk backup` wrote" in capsys.readouterr().err

    assert main(["restore", str(archive), "--config", str(here / "config.toml")]) == 0
    said = capsys.readouterr().out
    assert (
        said.startswith(f"restored {archive} as {here / 'store.json'}: 2 votes") and "before-restore" in said
    )
    back = open_store(here / "store.json", read_only=True)
    try:
        assert sorted(v.draft_id for v in back.votes()) == ["t1r1A", "t2r1A"]
    finally:
        back.close()
    [aside] = [p for p in here.iterdir() if p.name.startswith("store.json.before-restore-") and p.is_file()]
    replaced = open_store(aside, read_only=True)
    try:
        assert [v.draft_id for v in replaced.votes()] == ["t9r1A"]  # kept, not deleted
    finally:
        replaced.close()
    assert not [p for p in here.iterdir() if ".restoring-" in p.name]


def test_backup_never_writes_over_the_stores_own_files_or_leaves_a_snapshot(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    config = store_with_config(tmp_path, 1)
    (tmp_path / "elsewhere.tgz").write_text("someone's file")
    (tmp_path / "link.tgz").symlink_to(tmp_path / "elsewhere.tgz")
    for output in ("store.json", "store.json.lock", "store.json.d/votes/x.tgz", "link.tgz"):
        assert main(["backup", "--output", str(tmp_path / output), "--config", str(config)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert [
        e.endswith("is one of the store's own files or folders: write the backup elsewhere") for e in errors
    ] == [
        True,
        True,
        True,
        False,
    ]
    assert errors[3].endswith("is a link: give the path of the file itself")
    assert (tmp_path / "elsewhere.tgz").read_text() == "someone's file"

    def failing(self, target):  # e.g. a file system without hard links
        target.mkdir()
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(PartitionedStore, "snapshot", failing)
    assert main(["backup", "--output", str(tmp_path / "b.tgz"), "--config", str(config)]) == 2
    assert "Operation not supported" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if ".snapshot-" in p.name] and not (tmp_path / "b.tgz").exists()
    assert voted_drafts(tmp_path / "store.json") == ["t1r1A"]  # the store as it was


def test_a_restore_after_one_killed_half_way_puts_the_archive_back_whole(tmp_path: Path, capsys) -> None:
    config = store_with_config(tmp_path, 1)
    archive = tmp_path / "b.tar.gz"
    assert main(["backup", "--output", str(archive), "--config", str(config)]) == 0
    newer = PartitionedStore(tmp_path / "store.json")
    rated_round(newer, 2)
    newer.close()
    # As a restore killed after moving the history aside leaves it: a history without its main file,
    # and the unpacked copy it was working on.
    (tmp_path / "store.json").rename(tmp_path / "store.json.moved-by-hand")
    (tmp_path / ".store.json.restoring-20261101T000000Z").mkdir()
    assert main(["restore", str(archive), "--config", str(config)]) == 0
    said = capsys.readouterr().out  # the lone history, moved aside and named
    assert re.search(r"at \S+/store\.json\.before-restore-\d{8}T\d{6}Z\.d: remove it", said), said
    back = open_store(tmp_path / "store.json", read_only=True)
    try:
        assert [v.draft_id for v in back.votes()] == ["t1r1A"]  # the archive's store, not a mix
        assert back.draft("t2r1A") is None
    finally:
        back.close()
    assert not [p for p in tmp_path.iterdir() if ".restoring-" in p.name]


def test_keep_never_removes_the_new_backup_or_a_hand_named_one(tmp_path: Path, capsys) -> None:
    config = store_with_config(tmp_path, 1)
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "draftdesk-before-upgrade.tar.gz").write_bytes(b"the operator's")
    (folder / "draftdesk-20261101T000000Z.tar.gz").write_bytes(b"old")
    assert main(["backup", "--into", str(folder), "--keep", "1", "--config", str(config)]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names[0] == "draftdesk-2026" + names[0][len("draftdesk-2026") :] and len(names) == 2
    assert "draftdesk-before-upgrade.tar.gz" in names and "draftdesk-20261101T000000Z.tar.gz" not in names
