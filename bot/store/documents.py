"""How the TinyDB store keeps records as JSON documents, and reads them back. Pure.

``bot.store.partitioned.PartitionedStore`` writes, and the single-file layout it migrates from held,
the same job, round and vote documents (votes as ``bot.store.votes_io.vote_row``); this is the one place
that turns them back into the domain's records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.domain import ROUND_GENERATING, DraftOutcome, Job, RoundRecord, SendRecord, Vote, round_id_for


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def job_from_doc(doc: Any) -> Job:
    """A job document (its TinyDB ``doc_id`` is the job id)."""
    return Job(
        id=doc.doc_id,
        ticket_id=doc["ticket_id"],
        source=doc["source"],
        attempts=doc["attempts"],
        status=doc["status"],
        created_at=parse_iso(doc["created_at"]),
        not_before=parse_iso(doc["not_before"]),
        last_error=doc.get("last_error"),
    )


def new_round_doc(
    ticket_id: int, comment_id: int, number: int, created_at: datetime, language: str | None = None
) -> dict[str, Any]:
    """A round as created: still generating, no notice posted (each store adds its drafts). A round
    written before languages were recorded has no "language" key: it reads as None."""
    return {
        "id": round_id_for(ticket_id, number),
        "ticket_id": ticket_id,
        "comment_id": comment_id,
        "number": number,
        "status": ROUND_GENERATING,
        "notices_posted": [],
        "created_at": iso(created_at),
        "language": language,
    }


def blank_draft(model: str) -> dict[str, Any]:
    """A draft's fields before the model has written it and before it is posted."""
    return {
        "model": model,
        "text": None,
        "error": None,
        "channel": None,
        "slack_ts": [],
        "sent_to_zendesk_by": None,
    }


def round_from_doc(doc: Any) -> RoundRecord:
    return RoundRecord(
        id=doc["id"],
        ticket_id=doc["ticket_id"],
        comment_id=doc["comment_id"],
        number=doc["number"],
        status=doc["status"],
        notices_posted=tuple(doc.get("notices_posted", ())),
        language=doc.get("language"),
    )


def votes_from_docs(docs: Any, since: datetime | None, until: datetime | None) -> list[Vote]:
    """The votes with since <= voted_at < until (unsorted)."""
    found = []
    for doc in docs:
        voted_at = parse_iso(doc["voted_at"])
        if (since and voted_at < since) or (until and voted_at >= until):
            continue
        found.append(
            Vote(
                ticket_id=doc["ticket_id"],
                draft_id=doc["draft_id"],
                model=doc["model"],
                rater=doc["rater"],
                score=doc["score"],
                source=doc["source"],
                voted_at=voted_at,
                model_version=doc.get("model_version"),
                reason=doc.get("reason"),
                reason_note=doc.get("reason_note"),
            )
        )
    return found


def next_due(job_docs: Any, queued: str) -> datetime | None:
    """The earliest ``not_before`` of the jobs in status ``queued``."""
    times = [parse_iso(d["not_before"]) for d in job_docs if d["status"] == queued]
    return min(times) if times else None


def outcome_doc(outcome: DraftOutcome) -> dict[str, Any]:
    return {
        "ticket_id": outcome.ticket_id,
        "draft_id": outcome.draft_id,
        "model": outcome.model,
        "reply_comment_id": outcome.reply_comment_id,
        "sent": outcome.sent,
        "chrf": outcome.chrf,
        "edit_distance": outcome.edit_distance,
        "replied_at": iso(outcome.replied_at),
    }


def outcome_from_doc(doc: Any) -> DraftOutcome:
    return DraftOutcome(
        ticket_id=doc["ticket_id"],
        draft_id=doc["draft_id"],
        model=doc["model"],
        reply_comment_id=doc["reply_comment_id"],
        sent=doc["sent"],
        chrf=doc["chrf"],
        edit_distance=doc["edit_distance"],
        replied_at=parse_iso(doc["replied_at"]),
    )


def outcomes_from_docs(docs: Any, since: datetime | None, until: datetime | None) -> list[DraftOutcome]:
    """The outcomes with since <= replied_at < until, oldest first."""
    found = [outcome_from_doc(d) for d in docs]
    found = [o for o in found if (not since or o.replied_at >= since) and (not until or o.replied_at < until)]
    return sorted(found, key=lambda o: (o.replied_at, o.draft_id))


def send_to_doc(send: SendRecord) -> dict[str, Any]:
    return {
        "id": send.id,
        "ticket_id": send.ticket_id,
        "round_id": send.round_id,
        "draft_id": send.draft_id,
        "user": send.user,
        "state": send.state,
        "public": send.public,
        "edited": send.edited,
        "body_sha256": send.body_sha256,
        "started_at": iso(send.started_at),
        "author_id": send.author_id,
        "comment_id": send.comment_id,
        "finished_at": iso(send.finished_at) if send.finished_at else None,
        "error": send.error,
        "edited_text": send.edited_text,
    }


def send_from_doc(doc: Any) -> SendRecord:
    return SendRecord(
        id=doc["id"],
        ticket_id=doc["ticket_id"],
        round_id=doc["round_id"],
        draft_id=doc["draft_id"],
        user=doc["user"],
        state=doc["state"],
        public=doc["public"],
        edited=doc["edited"],
        body_sha256=doc["body_sha256"],
        started_at=parse_iso(doc["started_at"]),
        author_id=doc.get("author_id"),
        comment_id=doc.get("comment_id"),
        finished_at=parse_iso(doc["finished_at"]) if doc.get("finished_at") else None,
        error=doc.get("error"),
        edited_text=doc.get("edited_text"),
    )


def ts_time(ts: str) -> datetime:
    """A Slack ``ts`` ("1700000000.000100", a Unix time) as an aware datetime; the epoch if it is none."""
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)


def pending_thread(doc: Any) -> tuple[str, datetime] | None:
    """(channel, since) of a thread document whose parent message may be posted but is not recorded."""
    if not doc or doc.get("ts") or not doc.get("pending_since"):
        return None
    return doc["channel"], parse_iso(doc["pending_since"])
