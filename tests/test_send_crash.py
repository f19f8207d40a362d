"""kill -9 of a real process in the middle of sending a draft: the send was recorded as pending
before the Zendesk call, and the next start finds out from the ticket whether the comment went in,
without ever adding a second one."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.slack.sending import SendFlow
from bot.store.partitioned import PartitionedStore
from core.domain import SEND_FAILED, SEND_PENDING, SEND_SENT
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk import ZendeskGateway
from tests import waiting
from tests.recording_poster import RecordingPoster

ROOT = Path(__file__).resolve().parent.parent
TEXT = "Please restart the backup agent."

SENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bot.store.partitioned import PartitionedStore
    from bot.slack.send_views import ModalState, text_hash
    from bot.slack.sending import SendFlow
    from core.domain import ChatUser
    from integrations.zendesk import ZendeskGateway
    from tests.recording_poster import RecordingPoster

    class NoModals:
        def user_profile(self, user):
            return ChatUser(user, "grace", "")  # no e-mail: no Zendesk agent, the note says who sent it

    store = PartitionedStore(Path(sys.argv[1]))
    zendesk = ZendeskGateway.from_settings(sys.argv[2], "agent@example.com", "token")
    flow = SendFlow(store, RecordingPoster(), NoModals(), zendesk)
    state = ModalState("t7r1A", "CDRAFTS", None, text_hash(sys.argv[3]), ())
    values = {"draft_text": {"text": {"value": sys.argv[3]}}}
    view = {"private_metadata": state.to_metadata(), "state": {"values": values}}
    answer, deliver = flow.submit("UGRACE", "grace", view)
    assert answer is None, answer
    print("recorded", flush=True)
    deliver()  # the Zendesk call: the test kills the process while it waits for the answer
    print("delivered", flush=True)
    """
)


def seeded_store(path: Path) -> None:
    store = PartitionedStore(path)
    store.save_ticket_thread(7, "CDRAFTS", "1700000000.000100")
    store.create_round(7, 70, [("A", "llama-ft")])
    store.save_generated("t7r1A", TEXT, None)
    store.add_draft_message("t7r1A", "CDRAFTS", "1700000000.000200")
    store.close()


@pytest.mark.parametrize(
    "comment_arrives", [True, False], ids=["killed-after-zendesk-added-it", "killed-before"]
)
def test_a_send_killed_mid_call_is_resolved_at_the_next_start(tmp_path, comment_arrives):
    path = tmp_path / "store.json"
    seeded_store(path)
    with FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        zendesk.add_ticket(7, "Backup stuck", 100, comments=[(100, "My backup is stuck.", True)])
        gate = zendesk.hold_writes(before_change=not comment_arrives)
        proc = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(path), zendesk.url, TEXT],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            waiting.wait_until(lambda: zendesk.requests_to("PUT", "/api/v2/tickets/7.json"), 60, "the PUT")
            if comment_arrives:
                waiting.wait_until(lambda: len(zendesk.comments(7)) == 2, 10, "the comment added")
            proc.kill()  # SIGKILL: no clean-up runs
            _, err = proc.communicate(timeout=30)
        finally:
            gate.set()
        assert proc.returncode == -9, err
        notes_before = zendesk.comments(7)[1:]
        assert len(notes_before) == (1 if comment_arrives else 0)

        store = PartitionedStore(path)
        [pending] = store.pending_sends()
        assert (pending.state, pending.draft_id, pending.user) == (SEND_PENDING, "t7r1A", "UGRACE")
        gateway = ZendeskGateway.from_settings(zendesk.url, "agent@example.com", "token")
        slack = RecordingPoster()
        assert SendFlow(store, slack, None, gateway).resolve_pending() == 1  # type: ignore[arg-type]
        [send] = store.sends_for_round("t7r1")
        assert store.pending_sends() == []
        if comment_arrives:
            assert (send.state, send.comment_id) == (SEND_SENT, notes_before[0]["id"])
            assert store.draft("t7r1A").sent_to_zendesk_by == "UGRACE"
        else:
            assert send.state == SEND_FAILED and store.draft("t7r1A").sent_to_zendesk_by is None
        assert zendesk.comments(7)[1:] == notes_before  # resolving never sends
        store.close()
