"""The partitioned store in its worst hour (issue 29): jobs in parts of 100 ids, a busy hour's message
index in parts of at most 200, both whole after SIGKILL; and the migration of format 2 stores (the
queue in the hot file, finished jobs in a growing file per week)."""

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import message_index
from bot.store.atomic_storage import AtomicJSONStorage
from bot.store.message_index import MESSAGES_PER_PART
from bot.store.partitioned import PartitionedStore
from core.domain import JOB_DONE, JOB_FAILED, JOB_QUEUED, JOB_RUNNING

FORMAT_2 = Path(__file__).parent / "fixtures" / "store" / "format2"
HOUR = 1772442000  # 2026-03-02 09:00 UTC
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _rows_per_message_file(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): len(json.loads(p.read_text())["messages"])
        for p in (folder / "messages").glob("**/*.json")
    }


def _tickets_with_messages(store: PartitionedStore, tickets: range, ts_of) -> None:
    for ticket in tickets:
        store.create_round(ticket, 10, [("A", "m1"), ("B", "m2"), ("C", "m3")])
        for n, label in enumerate("ABC"):
            store.add_draft_message(f"t{ticket}r1{label}", "C1", ts_of(ticket, n))


def test_a_busy_hours_message_index_goes_on_in_bounded_parts_and_finds_every_message(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")

    def ts_of(ticket: int, n: int) -> str:
        return f"{HOUR + ticket}.{n:06d}"

    _tickets_with_messages(store, range(1, 301), ts_of)  # 900 messages within one hour
    rows = _rows_per_message_file(tmp_path / "s.json.d")
    assert sum(rows.values()) == 900 and max(rows.values()) <= MESSAGES_PER_PART
    assert "messages/2026-03-02T09.json" in rows and len(rows) == 5  # the hour file, then 4 parts
    # A message from earlier in the hour (a slow poster) lands in the full part that covers its ts:
    # the part splits in two, and the same ts in another channel stays beside it.
    store.create_round(1000, 10, [("A", "m1"), ("B", "m2")])
    store.add_draft_message("t1000r1A", "C1", f"{HOUR + 120}.500000")
    store.add_draft_message("t1000r1B", "C2", f"{HOUR + 120}.500000")
    rows = _rows_per_message_file(tmp_path / "s.json.d")
    assert sum(rows.values()) == 902 and max(rows.values()) <= MESSAGES_PER_PART and len(rows) == 6
    store.close()
    reopened = PartitionedStore(tmp_path / "s.json")
    for ticket in range(1, 301):
        for n, label in enumerate("ABC"):
            assert reopened.draft_by_message("C1", ts_of(ticket, n)).id == f"t{ticket}r1{label}"
    assert reopened.draft_by_message("C1", f"{HOUR + 120}.500000").id == "t1000r1A"
    assert reopened.draft_by_message("C2", f"{HOUR + 120}.500000").id == "t1000r1B"
    assert reopened.draft_by_message("C3", f"{HOUR + 120}.500000") is None
    since = T0 + timedelta(seconds=250)
    assert {d.ticket_id for d in reopened.drafts_posted_since(since)} == set(range(250, 301))
    reader = PartitionedStore(tmp_path / "s.json", read_only=True)
    assert reader.draft_by_message("C1", ts_of(299, 2)).id == "t299r1C"


def test_a_message_look_up_reads_only_the_part_that_covers_its_ts(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    _tickets_with_messages(store, range(1, 151), lambda ticket, n: f"{HOUR + ticket}.{n:06d}")
    store.close()
    parts = sorted((tmp_path / "s.json.d/messages/2026-03-02T09").glob("*.json"))
    assert len(parts) == 2
    parts[0].write_text("not json")  # break one part: the others' messages are still found
    store = PartitionedStore(tmp_path / "s.json")
    assert store.draft_by_message("C1", f"{HOUR + 1}.000000").id == "t1r1A"  # in the hour file
    assert store.draft_by_message("C1", f"{HOUR + 150}.000002").id == "t150r1C"  # in the last part
    with pytest.raises(RuntimeError):
        store.draft_by_message("C1", parts[0].stem)  # the first message of the broken part


def test_a_split_killed_between_its_two_writes_loses_no_message(tmp_path, monkeypatch):
    store = PartitionedStore(tmp_path / "s.json")
    _tickets_with_messages(store, range(1, 68), lambda ticket, n: f"{HOUR + ticket}.{n:06d}")
    assert _rows_per_message_file(tmp_path / "s.json.d")["messages/2026-03-02T09.json"] == MESSAGES_PER_PART
    real_write = AtomicJSONStorage.write
    writes: list[Path] = []

    def killed_at_the_second(self, data):
        writes.append(self.path)
        if len(writes) == 2:
            raise SystemExit("killed")
        real_write(self, data)

    monkeypatch.setattr(AtomicJSONStorage, "write", killed_at_the_second)
    store.create_round(500, 10, [("A", "m1")])
    writes.clear()
    with pytest.raises(SystemExit):
        store.add_draft_message("t500r1A", "C1", f"{HOUR + 40}.000009")
    assert writes[0].parent.name == "2026-03-02T09"  # the new upper part was written first
    monkeypatch.setattr(AtomicJSONStorage, "write", real_write)
    store._writer.release()
    reopened = PartitionedStore(tmp_path / "s.json")
    for ticket in range(1, 68):
        assert reopened.draft_by_message("C1", f"{HOUR + ticket}.000001").id == f"t{ticket}r1B"
    assert reopened.draft_by_message("C1", f"{HOUR + 40}.000009").id == "t500r1A"  # it was in the part
    for ticket in range(68, 400):  # and the index goes on, bounded
        reopened.create_round(ticket, 10, [("A", "m1")])
        reopened.add_draft_message(f"t{ticket}r1A", "C1", f"{HOUR + ticket}.000000")
    assert max(_rows_per_message_file(tmp_path / "s.json.d").values()) <= MESSAGES_PER_PART


def test_sigkill_during_a_burst_leaves_every_file_whole_and_every_message_found(tmp_path):
    path = tmp_path / "s.json"
    script = textwrap.dedent(
        f"""
        import random
        from pathlib import Path
        from bot.store.partitioned import PartitionedStore
        store = PartitionedStore(Path({str(path)!r}))
        start = store.get_meta("counter", -1) + 1
        rng = random.Random(start)
        for i in range(start, 10**6):
            store.enqueue(i, "poll")
            store.finish_job(store.claim_next_job().id)
            store.create_round(i, 1, [("A", "m1")])
            ts = {HOUR} + i * 0.5 + rng.random()  # nearly in order, as concurrent posters finish
            store.add_draft_message(f"t{{i}}r1A", "C1", f"{{ts:.6f}}")
            store.set_meta("counter", i)
            if i == start + 150:
                print("ready", flush=True)
        """
    )
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for part in tmp_path.glob("**/*.json"):
            json.loads(part.read_text())  # never torn
        store = PartitionedStore(path)
        counter = store.get_meta("counter")
        found = {m.ticket_id for m in store.drafts_posted_since(T0)}
        assert found >= set(range(counter + 1))
        assert {j.ticket_id for j in store.jobs(JOB_DONE)} >= set(range(counter + 1))
        assert max(_rows_per_message_file(tmp_path / "s.json.d").values()) <= MESSAGES_PER_PART
        store.close()
    assert counter > 450


def test_failed_jobs_in_an_old_part_are_read_at_every_open_until_they_leave_the_queue(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    for ticket in range(250):
        store.enqueue(ticket, "poll", now=T0)
    for _ in range(250):
        job = store.claim_next_job(T0)
        store.fail_job(job.id, "gone") if job.id == 3 else store.finish_job(job.id)
    marker = json.loads((tmp_path / "s.json").read_text())["format"]["1"]
    assert marker["live_job_parts"] == ["000000"]  # job 3's part: the newest part is read anyway
    sizes = [p.stat().st_size for p in (tmp_path / "s.json.d/jobs").glob("*.json")]
    assert len(sizes) == 3 and max(sizes) < 40_000
    store.close()
    store = PartitionedStore(tmp_path / "s.json")
    assert [(j.id, j.status) for j in store.jobs(JOB_FAILED)] == [(3, JOB_FAILED)]
    assert store.requeue_job(3, T0).status == JOB_QUEUED
    store.finish_job(store.claim_next_job(T0).id)
    assert json.loads((tmp_path / "s.json").read_text())["format"]["1"]["live_job_parts"] == []
    assert store.jobs(JOB_FAILED) == [] and len(store.jobs(JOB_DONE)) == 250


def test_a_backlog_queue_is_claimed_earliest_due_first_across_parts(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    for ticket in range(300):
        store.enqueue(ticket, "poll", now=T0 + timedelta(seconds=300 - ticket))  # later tickets due first
    assert not store.enqueue(5, "poll")  # already queued, wherever its part
    store.close()
    store = PartitionedStore(tmp_path / "s.json")
    assert store.next_job_due() == T0 + timedelta(seconds=1)
    claimed = [store.claim_next_job(T0 + timedelta(seconds=150)) for _ in range(151)]
    assert [job.ticket_id for job in claimed[:150]] == list(range(299, 149, -1)) and claimed[150] is None
    assert store.requeue_interrupted_jobs() == 150


# ---- format 2 → 3 --------------------------------------------------------------------------------

EXPECTED_JOBS = [(1, 1, JOB_DONE), (2, 2, JOB_DONE), (3, 3, JOB_DONE), (4, 4, JOB_DONE), (5, 5, JOB_FAILED)]
EXPECTED_JOBS += [(6, 6, JOB_QUEUED), (7, 7, JOB_RUNNING)]


def _format_2_store(tmp_path: Path) -> Path:
    shutil.copytree(FORMAT_2, tmp_path / "store")
    return tmp_path / "store" / "draftdesk.json"


def _assert_holds_the_format_2_fixture(store: PartitionedStore) -> None:
    assert [(j.id, j.ticket_id, j.status) for j in store.jobs()] == EXPECTED_JOBS
    assert store.jobs(JOB_FAILED)[0].last_error == "Zendesk said 404: the ticket is gone"
    assert store.next_job_due() == datetime(2026, 3, 10, 9, 5, tzinfo=UTC)  # job 6, retried later
    assert store.draft_by_message("C0DESK", "1772442001.000200").id == "t1r1B"
    assert [v.draft_id for v in store.votes()] == ["t1r1A"]
    assert store.get_meta("poll_cursor") == "MTc3MjQ0MjAwMC4w"


def test_a_format_2_store_is_migrated_once_and_goes_on_after_its_last_id(tmp_path):
    path = _format_2_store(tmp_path)
    store = PartitionedStore(path)
    _assert_holds_the_format_2_fixture(store)
    hot = json.loads(path.read_text())
    assert "jobs" not in hot and hot["format"]["1"]["version"] == 3
    assert sorted(p.name for p in (path.parent / "draftdesk.json.d/jobs").iterdir()) == ["000000.json"]
    assert store.requeue_interrupted_jobs() == 1  # job 7, running when the old version stopped
    assert store.enqueue(9, "poll") and store.jobs(JOB_QUEUED)[-1].id == 9  # 8 was dropped: not reused
    store.close()
    before = path.read_bytes()
    PartitionedStore(path).close()
    assert path.read_bytes() == before  # not migrated again


def test_a_read_only_open_of_a_format_2_store_reads_it_as_it_is(tmp_path):
    path = _format_2_store(tmp_path)
    files = {p: p.read_bytes() for p in path.parent.glob("**/*") if p.is_file()}
    store = PartitionedStore(path, read_only=True)
    _assert_holds_the_format_2_fixture(store)
    store.close()
    assert {p: p.read_bytes() for p in path.parent.glob("**/*") if p.is_file()} == files


@pytest.mark.parametrize("killed_before", ["the hot file", "removing the week files"])
def test_a_format_2_migration_killed_halfway_is_finished_at_the_next_open(
    tmp_path, monkeypatch, killed_before
):
    path = _format_2_store(tmp_path)
    if killed_before == "the hot file":
        real_write = AtomicJSONStorage.write

        def killed(self, data):
            if self.path == path:
                raise SystemExit("killed")
            real_write(self, data)

        monkeypatch.setattr(AtomicJSONStorage, "write", killed)
    else:
        monkeypatch.setattr(
            Path, "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(SystemExit())
        )
    with pytest.raises(SystemExit):
        PartitionedStore(path)
    monkeypatch.undo()
    (path.parent / "draftdesk.json.lock").unlink(missing_ok=True)  # the killed process's lock
    store = PartitionedStore(path)
    _assert_holds_the_format_2_fixture(store)
    assert sorted(p.name for p in (path.parent / "draftdesk.json.d/jobs").iterdir()) == ["000000.json"]


def test_the_message_index_orders_slack_ts_by_their_digits():
    assert message_index.ts_key("1772442000.000100") < message_index.ts_key("1772442000.000200")
    assert message_index.ts_key("1772442000.9") > message_index.ts_key("1772442000.100000")
    assert message_index.ts_key("not-a-ts") is None
