"""Rows of the PostgreSQL store (dicts from psycopg's ``dict_row``) as the domain's records. Pure."""

from __future__ import annotations

from typing import Any

from core.domain import DraftOutcome, DraftRecord, Job, RoundRecord, SendRecord, Vote

JOB_COLUMNS = "id, ticket_id, source, attempts, status, created_at, not_before, last_error"
DRAFT_COLUMNS = (
    "id, ticket_id, round_id, round_number, label, model, text, error, channel, slack_ts, "
    "sent_to_zendesk_by, model_version, prompt, comment_id, language"
)
SEND_COLUMNS = (
    'id, ticket_id, round_id, draft_id, "user", state, public, edited, body_sha256, started_at, '
    "author_id, comment_id, finished_at, error, edited_text"
)
VOTE_COLUMNS = (
    "ticket_id, draft_id, model, rater, score, source, voted_at, reason, reason_note, model_version"
)
OUTCOME_COLUMNS = "ticket_id, draft_id, model, reply_comment_id, sent, chrf, edit_distance, replied_at"


def job(row: dict[str, Any]) -> Job:
    return Job(
        row["id"],
        row["ticket_id"],
        row["source"],
        row["attempts"],
        row["status"],
        row["created_at"],
        row["not_before"],
        row["last_error"],
    )


def round_(row: dict[str, Any]) -> RoundRecord:
    return RoundRecord(
        row["id"],
        row["ticket_id"],
        row["comment_id"],
        row["number"],
        row["status"],
        notices_posted=tuple(row["notices_posted"] or ()),
        language=row["language"],
    )


def draft(row: dict[str, Any]) -> DraftRecord:
    return DraftRecord(
        id=row["id"],
        ticket_id=row["ticket_id"],
        round_id=row["round_id"],
        round_number=row["round_number"],
        label=row["label"],
        model=row["model"],
        text=row["text"],
        error=row["error"],
        channel=row["channel"],
        slack_ts=tuple(row["slack_ts"] or ()),
        sent_to_zendesk_by=row["sent_to_zendesk_by"],
        model_version=row["model_version"],
        prompt=row["prompt"],
        comment_id=row["comment_id"],
        language=row["language"],
    )


def send(row: dict[str, Any]) -> SendRecord:
    return SendRecord(
        id=row["id"],
        ticket_id=row["ticket_id"],
        round_id=row["round_id"],
        draft_id=row["draft_id"],
        user=row["user"],
        state=row["state"],
        public=row["public"],
        edited=row["edited"],
        body_sha256=row["body_sha256"],
        started_at=row["started_at"],
        author_id=row["author_id"],
        comment_id=row["comment_id"],
        finished_at=row["finished_at"],
        error=row["error"],
        edited_text=row["edited_text"],
    )


def send_params(record: SendRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "ticket_id": record.ticket_id,
        "round_id": record.round_id,
        "draft_id": record.draft_id,
        "user": record.user,
        "state": record.state,
        "public": record.public,
        "edited": record.edited,
        "body_sha256": record.body_sha256,
        "started_at": record.started_at,
        "author_id": record.author_id,
        "comment_id": record.comment_id,
        "finished_at": record.finished_at,
        "error": record.error,
        "edited_text": record.edited_text,
    }


def vote(row: dict[str, Any]) -> Vote:
    return Vote(
        ticket_id=row["ticket_id"],
        draft_id=row["draft_id"],
        model=row["model"],
        rater=row["rater"],
        score=row["score"],
        source=row["source"],
        voted_at=row["voted_at"],
        reason=row["reason"],
        reason_note=row["reason_note"],
        model_version=row["model_version"],
    )


def vote_params(record: Vote) -> dict[str, Any]:
    return {
        "ticket_id": record.ticket_id,
        "draft_id": record.draft_id,
        "model": record.model,
        "rater": record.rater,
        "score": record.score,
        "source": record.source,
        "voted_at": record.voted_at,
        "reason": record.reason,
        "reason_note": record.reason_note,
        "model_version": record.model_version,
    }


def outcome(row: dict[str, Any]) -> DraftOutcome:
    return DraftOutcome(
        ticket_id=row["ticket_id"],
        draft_id=row["draft_id"],
        model=row["model"],
        reply_comment_id=row["reply_comment_id"],
        sent=row["sent"],
        chrf=row["chrf"],
        edit_distance=row["edit_distance"],
        replied_at=row["replied_at"],
    )


def outcome_params(record: DraftOutcome) -> dict[str, Any]:
    return {
        "ticket_id": record.ticket_id,
        "draft_id": record.draft_id,
        "model": record.model,
        "reply_comment_id": record.reply_comment_id,
        "sent": record.sent,
        "chrf": record.chrf,
        "edit_distance": record.edit_distance,
        "replied_at": record.replied_at,
    }
