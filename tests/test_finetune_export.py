"""`finetune export` through zenpy over HTTP against the loopback Zendesk serving the bundled sample."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetune.config import ExportConfig
from finetune.export import export_zendesk
from finetune.sample import SAMPLE_EMAIL, SAMPLE_TOKEN, load_sample, sample_zendesk
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk import RetryPolicy, ZendeskGateway, ZendeskUnavailable

INCREMENTAL = "/api/v2/incremental/tickets/cursor.json"
CONFIG = ExportConfig(locales=["en-us", "de"], requests_per_minute=0)


@pytest.fixture
def zd() -> Iterator[FakeZendesk]:
    with sample_zendesk(page_size=20) as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def gateway(zd: FakeZendesk, sleeps: list[float]) -> ZendeskGateway:
    return ZendeskGateway.from_settings(zd.url, SAMPLE_EMAIL, SAMPLE_TOKEN, timeout=5, sleep=sleeps.append)


def test_export_writes_articles_tickets_notes_and_users(gateway: ZendeskGateway, tmp_path: Path) -> None:
    state = export_zendesk(gateway, tmp_path, CONFIG, progress=False)
    sample = load_sample()
    assert state.caught_up and state.pages == 5
    assert state.counts["articles_en-us"] == 12 and state.counts["articles_de"] == 4
    assert state.counts["tickets_seen"] == len(sample.tickets) == 100
    assert state.counts["tickets_exported"] == 96  # open, pending, new and deleted are skipped
    assert state.counts["tickets_skipped_status"] == 4
    assert state.counts["internal_notes"] == 5

    metadata = json.loads((tmp_path / "articles" / "metadata.json").read_text())
    assert len(metadata) == 16
    assert set(metadata[0]) == {"id", "title", "url", "locale", "updated_at", "section_id"}
    text = (tmp_path / "articles" / "en-us" / "360001.txt").read_text()
    assert text.startswith("Install the desktop app\n\n") and "1. Sign in at" in text and "<" not in text
    assert (tmp_path / "articles" / "de" / "360001.txt").read_text().startswith("Desktop-App installieren")

    exported = {int(p.stem) for p in (tmp_path / "tickets").glob("*.json")}
    solved = {t["id"] for t in sample.tickets if t["status"] in ("solved", "closed")}
    assert exported == solved
    ticket = json.loads((tmp_path / "tickets" / "2001.json").read_text())
    assert [c["role"] for c in ticket["comments"]] == ["requester", "agent", "requester", "agent"]
    assert all(c["public"] for c in ticket["comments"])

    notes_files = list((tmp_path / "internal_notes").glob("*.json"))
    notes = [n["body"] for f in notes_files for n in json.loads(f.read_text())["notes"]]
    assert len(notes) == 5 and all(
        not n["public"] for f in notes_files for n in json.loads(f.read_text())["notes"]
    )
    all_ticket_text = "".join(p.read_text() for p in (tmp_path / "tickets").glob("*.json"))
    assert not any(note in all_ticket_text for note in notes)  # kept apart

    users = [json.loads(line) for line in (tmp_path / "users.jsonl").read_text().splitlines()]
    roles = {u["name"]: u["role"] for u in users}
    assert roles["Olena Kovalenko"] == "agent" and roles["Tom Baker"] == "end-user"


def test_export_resumes_from_the_saved_cursor(
    zd: FakeZendesk, gateway: ZendeskGateway, tmp_path: Path
) -> None:
    def break_the_next_page(seconds: float) -> None:  # called between pages: page 2 keeps failing
        zd.fail_next(INCREMENTAL, 503, times=RetryPolicy().max_retries + 1)

    paced = ExportConfig(locales=["en-us", "de"], requests_per_minute=600)
    with pytest.raises(ZendeskUnavailable, match="503"):
        export_zendesk(gateway, tmp_path, paced, progress=False, sleep=break_the_next_page, clock=lambda: 0.0)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["cursor"] == "sample-cursor-1" and state["pages"] == 1 and not state["caught_up"]
    assert len(list((tmp_path / "tickets").glob("*.json"))) == 20
    assert state["locales_done"] == ["en-us", "de"]

    zd.requests.clear()
    final = export_zendesk(gateway, tmp_path, CONFIG, progress=False)
    incremental = zd.requests_to("GET", INCREMENTAL)
    assert incremental[0].query == {"cursor": "sample-cursor-1"}  # resumed, not restarted
    assert len(incremental) == 4 and final.caught_up and final.pages == 5
    assert len(list((tmp_path / "tickets").glob("*.json"))) == 96
    assert final.counts["tickets_exported"] == 96
    assert not zd.requests_to("GET", "/api/v2/help_center/en-us/articles.json")  # not exported again


def test_a_rerun_with_nothing_new_is_caught_up_and_changes_nothing(
    zd: FakeZendesk, gateway: ZendeskGateway, tmp_path: Path
) -> None:
    first = export_zendesk(gateway, tmp_path, CONFIG, progress=False)
    before = sorted(p.name for p in (tmp_path / "tickets").iterdir())
    again = export_zendesk(gateway, tmp_path, CONFIG, progress=False)
    assert again.caught_up and again.cursor == first.cursor
    assert sorted(p.name for p in (tmp_path / "tickets").iterdir()) == before


def test_export_paces_the_incremental_export_and_waits_out_429(
    zd: FakeZendesk, gateway: ZendeskGateway, sleeps: list[float], tmp_path: Path
) -> None:
    zd.fail_next("/api/v2/tickets/2003/comments.json", 429, headers={"Retry-After": "7"})
    paced: list[float] = []
    export_zendesk(
        gateway,
        tmp_path,
        ExportConfig(locales=["en-us"], requests_per_minute=10),
        progress=False,
        sleep=paced.append,
        clock=lambda: 100.0,
    )
    assert paced == [6.0] * 4  # 10 a minute: 6 s between the five pages
    assert sleeps == [7.0]  # Retry-After honoured by the gateway's session
    assert (tmp_path / "tickets" / "2003.json").is_file()


def test_a_rerun_picks_up_new_changes_and_drops_reopened_tickets(
    zd: FakeZendesk, gateway: ZendeskGateway, tmp_path: Path
) -> None:
    export_zendesk(gateway, tmp_path, CONFIG, progress=False)
    assert (tmp_path / "tickets" / "2001.json").is_file()
    reopened = {**zd.ticket(2001), "status": "open"}
    pages = [
        {"tickets": [], "after_cursor": f"sample-cursor-{i}", "end_of_stream": False} for i in (1, 2, 3, 4, 5)
    ] + [{"tickets": [reopened], "after_cursor": "sample-cursor-6", "end_of_stream": True}]
    zd.set_incremental_pages(pages)
    state = export_zendesk(gateway, tmp_path, CONFIG, progress=False)
    assert not (tmp_path / "tickets" / "2001.json").exists()
    assert not (tmp_path / "internal_notes" / "2001.json").exists()
    assert state.counts["tickets_removed"] == 1 and state.cursor == "sample-cursor-6"
