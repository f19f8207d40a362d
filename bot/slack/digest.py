"""The weekly rating digest: the report for the week before each scheduled time, posted once.

APScheduler's CronTrigger decides when a digest is due. The period each digest covers ends at
its own scheduled time, and the end of the last posted period is stored, so a digest missed
while the bot was down is posted once at the next start, and never twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.config import DigestSettings
from bot.reporting.chart import digest_chart
from bot.reporting.comparisons import Analysis, analyse, choose_baseline
from bot.reporting.languages import DEFAULT_MIN_TICKETS, LanguageSection, language_sections, vote_languages
from bot.reporting.model_versions import baseline_row, by_version
from bot.reporting.outcomes import OutcomeStats, outcome_stats
from bot.reporting.promotion import Standing, standing_lines
from bot.reporting.reasons import ReasonCount, reasons_line, top_reasons
from bot.reporting.report import NO_EXTRAS, ReportExtras, table1_rows, table2_rows
from bot.reporting.stats import ModelStats, model_stats
from bot.slack.blocks import escape_mrkdwn
from core.coordination import Exclusive, alone
from core.domain import Vote, utcnow
from core.languages import language_name
from core.ports import ChatError, ChatPoster, Store

log = logging.getLogger(__name__)

META_LAST_PERIOD_END = "digest_last_period_end"
PERIOD = timedelta(days=7)
EVIDENCE = timedelta(weeks=8)  # comparisons and agreement rest on this much history, not one week
BAR_WIDTH = 20


def trigger_for(settings: DigestSettings) -> CronTrigger:
    return CronTrigger(
        day_of_week=settings.day_of_week, hour=settings.hour, minute=0, timezone=settings.timezone
    )


def latest_due(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The most recent scheduled time at or before `now` (within the last period)."""
    fire = trigger.get_next_fire_time(None, now - PERIOD)
    latest = None
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


def _bar(share: float) -> str:
    filled = round(share * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def analysis_text(analysis: Analysis) -> str:
    """The decision in words: each model against the baseline, and whether the raters agree."""
    lines = []
    if analysis.comparisons:
        lines.append(f"*Against {escape_mrkdwn(analysis.baseline or '')}* (last 8 weeks, same tickets):")
    for c in analysis.comparisons:
        name = escape_mrkdwn(c.model)
        if c.diff_positive_pct is None or c.diff_ci_pct is None:
            lines.append(f"• *{name}*: no tickets rated for both yet")
            continue
        low, high = c.diff_ci_pct
        p = "<0.001" if (c.mcnemar_p or 1) < 0.001 else f"{c.mcnemar_p:.3f}"
        lines.append(
            f"• *{name}*: {c.share_label} {c.diff_positive_pct:+.1f} points "
            f"(95% CI {low:+.1f} to {high:+.1f}), p={p}, {c.n_pairs} {c.counted}: {c.verdict}"
        )
    agreement = analysis.agreement
    if agreement.krippendorff_alpha_ordinal is None:
        lines.append("Rater agreement: not measurable yet (needs drafts rated by two or more agents).")
    else:
        reliable = "reliable" if agreement.reliable else "not yet reliable: draw no conclusions"
        lines.append(
            f"Rater agreement: Krippendorff's alpha {agreement.krippendorff_alpha_ordinal:.2f} "
            f"on {agreement.units} drafts, {reliable}."
        )
    return "\n".join(lines)


def store_round_language(store: Store) -> Callable[[str], str | None]:
    """A round's recorded language, read through its drafts (None: recorded before languages were)."""

    def language(round_id: str) -> str | None:
        drafts = store.drafts_for_round(round_id)
        return drafts[0].language if drafts else None

    return language


def languages_text(week: Sequence[LanguageSection], history: Sequence[LanguageSection]) -> str | None:
    """Each language's ratings this week, and its models against its baseline over the last 8 weeks
    once it has enough tickets; None when the ratings span one language only."""
    codes = sorted({s.language for s in week} | {s.language for s in history})
    if len(codes) < 2:
        return None
    this_week = {s.language: s for s in week}
    evidence = {s.language: s for s in history}
    lines = ["*Per language* (the customer's):"]
    for code in codes:
        section = this_week.get(code)
        rated = (
            ", ".join(
                f"{escape_mrkdwn(r.model)} {r.positive_pct:.0f}% positive (n={r.n})"
                for r in section.rows
                if r.positive_pct is not None
            )
            if section
            else "no ratings this week"
        )
        tickets = f"{section.tickets} ticket(s) this week" if section else "no tickets this week"
        lines.append(f"• *{language_name(code)} ({code})*, {tickets}: {rated}")
        past = evidence.get(code)
        if past is None:
            continue
        if not past.compared:
            lines.append(
                f"   against its baseline from {past.min_tickets} rated tickets on (8 weeks: {past.tickets})"
            )
            continue
        for c in past.comparisons:
            if c.diff_positive_pct is None or c.diff_ci_pct is None:
                continue
            low, high = c.diff_ci_pct
            lines.append(
                f"   {escape_mrkdwn(c.model)} vs {escape_mrkdwn(c.baseline)}: "
                f"{c.diff_positive_pct:+.1f} points (95% CI {low:+.1f} to {high:+.1f}), "
                f"{c.n_pairs} {c.counted}: {c.verdict}"
            )
    return "\n".join(lines)


def candidates_text(candidates: Sequence[Standing]) -> str:
    """Each running candidate against its model's current version (all ratings so far)."""
    lines = ["*Candidates* (all ratings so far; promoted only when they win):"]
    for result in candidates:
        lines.append("```\n" + escape_mrkdwn("\n".join(standing_lines(result))) + "\n```")
    return "\n".join(lines)


def reasons_text(reasons: Sequence[ReasonCount], models: Sequence[str]) -> str | None:
    lines = [
        f"• *{escape_mrkdwn(model)}*: {line}"
        for model in models
        if (line := reasons_line(reasons, model)) is not None
    ]
    return "*Why 1s and 2s failed* (reasons agents gave):\n" + "\n".join(lines) if lines else None


def outcomes_text(stats: Sequence[OutcomeStats]) -> str | None:
    """Per model: how often its draft was the one sent, and how close it came to the reply sent."""
    lines = [
        f"• *{escape_mrkdwn(s.model)}*: sent {s.sent_pct:.0f}% ({s.sent} of {s.n}), "
        f"chrF {s.mean_chrf:.0f} to the reply sent, edit distance {s.median_edit_distance:.2f} (median)"
        for s in stats
        if s.n and s.sent_pct is not None and s.mean_chrf is not None and s.median_edit_distance is not None
    ]
    if not lines:
        return None
    head = "*The reply actually sent* (tickets answered this period; chrF 100 = the same text):"
    return head + "\n" + "\n".join(lines)


def digest_message(
    rows: Sequence[ModelStats],
    since: datetime,
    until: datetime,
    extras: ReportExtras = NO_EXTRAS,
    title: str = "Weekly draft ratings",
    note: str | None = None,
    languages_history: Sequence[LanguageSection] = (),
) -> tuple[str, list[dict]]:
    """Tables 1 and 2 in a Slack message (a row per model and adapter version), the decision
    (comparisons, agreement), the reasons and the replies sent under them, then each running
    candidate's standing; a text bar per row stands in for the chart. ``note``: a line under the
    heading (the demo says there that its raters are simulated); ``extras.languages`` (the week) and
    ``languages_history`` (8 weeks) give the per-language part when ratings span two languages."""
    period = f"{since:%a %d %b} – {until:%a %d %b %Y}"
    total = sum(r.n for r in rows)
    fallback = f"draftdesk: {title.lower()}, {period}: {total} ratings"
    t1_head, t1_body = table1_rows(rows)
    t2_head, t2_body = table2_rows(rows)

    def code_table(headers: list[str], body: list[list[str]]) -> str:
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in [headers, *body]
        ]
        return "```\n" + "\n".join(lines) + "\n```"

    bars = []
    for row in sorted(rows, key=lambda r: -(r.positive_pct or 0)):
        if row.n:
            ci = row.positive_ci_pct
            ci_text = f" (95% CI {ci[0]:.0f}–{ci[1]:.0f}%)" if ci else ""
            bars.append(
                f"`{_bar(row.positive / row.n)}` {row.positive_pct:.1f}% positive{ci_text} — "
                f"*{escape_mrkdwn(row.model)}*, n={row.n}, mean {row.mean:.2f}"
            )
        else:
            bars.append(f"`{_bar(0)}` no ratings — *{escape_mrkdwn(row.model)}*")
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{period} · {total} ratings"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(bars)[:3000]}},
    ]
    if note:
        blocks.insert(
            2, {"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(note)[:3000]}]}
        )
    if total:
        blocks += [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ("*Table 1: count of ratings*\n" + code_table(t1_head, t1_body))[:3000],
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ("*Table 2: negative (1–2) vs positive (3–5)*\n" + code_table(t2_head, t2_body))[
                        :3000
                    ],
                },
            },
        ]
    else:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "No drafts were rated this week."}}
        )
    if extras.analysis is not None:
        text = analysis_text(extras.analysis)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    per_language = languages_text(extras.languages, languages_history)
    texts = (outcomes_text(extras.sent), reasons_text(extras.reasons, [r.model for r in rows]), per_language)
    for extra in texts:
        if extra:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": extra[:3000]}})
    if extras.candidates:
        text = candidates_text(extras.candidates)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    return fallback, blocks


@dataclass(frozen=True)
class DigestContent:
    """One digest, ready to post: the message and its chart (file name, PNG, title)."""

    text: str
    blocks: list[dict]
    chart: tuple[str, bytes, str]


class DigestService:
    def __init__(
        self,
        store: Store,
        poster: ChatPoster,
        settings: DigestSettings,
        model_names: Sequence[str],
        clock: Callable[[], datetime] = utcnow,
        untuned: Sequence[str] = (),
        candidates: Callable[[Sequence[Vote]], Sequence[Standing]] | None = None,
        default_language: str = "en",
        min_language_tickets: int = DEFAULT_MIN_TICKETS,
        exclusive: Exclusive = alone,
    ) -> None:
        self.store = store
        self.exclusive = exclusive  # replicas: the one holding "weekly_digest" posts it
        self.poster = poster
        self.settings = settings
        self.model_names = list(model_names)
        self.baseline = choose_baseline(self.model_names, list(untuned), settings.baseline)
        self.clock = clock
        self.trigger = trigger_for(settings)
        self.candidates = candidates  # the running candidates' standing, from all votes
        self.untuned = list(untuned)
        self.default_language = default_language  # the language of rounds recorded before languages were
        self.min_language_tickets = min_language_tickets

    def compose(
        self,
        period_end: datetime,
        period: timedelta = PERIOD,
        title: str = "Weekly draft ratings",
        note: str | None = None,
    ) -> DigestContent:
        """The digest of the ``period`` before ``period_end``: the scheduled one, a preview, or a
        report asked for with the slash command. Comparisons rest on at least 8 weeks."""
        since = period_end - period
        raw = self.store.votes(since, period_end)
        votes, names = by_version(raw, self.model_names)  # a row per version
        rows = model_stats(votes, names)
        raw_history = self.store.votes(period_end - max(EVIDENCE, period), period_end)
        history, history_names = by_version(raw_history, self.model_names)
        analysis = analyse(history, history_names, baseline_row(self.baseline, history_names), period_end)
        reasons = top_reasons(votes, names)
        sent = outcome_stats(self.store.outcomes(since, period_end), self.model_names)
        standings = self.candidates(self.store.votes(until=period_end)) if self.candidates else ()
        week_languages, history_languages = self._language_sections(raw), self._language_sections(raw_history)
        extras = ReportExtras(analysis, reasons, sent, standings, week_languages)
        text, blocks = digest_message(rows, since, period_end, extras, title, note, history_languages)
        return DigestContent(text, blocks, self._chart(rows, analysis, since, period_end, note))

    def send_report(self, user: str, period: timedelta, title: str) -> None:
        """A report asked for on demand, by DM to the one who asked (with its chart)."""
        content = self.compose(self.clock(), period, title)
        self.poster.dm(user, content.text, content.blocks)
        self._share(lambda: self.poster.dm_upload(user, *content.chart), user)

    def post_for(self, period_end: datetime, note: str | None = None) -> None:
        since = period_end - PERIOD
        content = self.compose(period_end, note=note)
        text, blocks, chart = content.text, content.blocks, content.chart
        if self.settings.channel:  # a failure here raises: nothing is posted yet, the next run retries
            self.poster.post(self.settings.channel, text, blocks)
            self._share(lambda: self.poster.upload(self.settings.channel or "", *chart), "the channel")
        for user in self.settings.users:
            try:
                self.poster.dm(user, text, blocks)
            except ChatError as exc:  # one unreachable user must not repeat the digest for everyone
                log.error("could not send the weekly digest to %s: %s", user, exc)
                continue
            self._share(lambda user=user: self.poster.dm_upload(user, *chart), user)
        self.store.set_meta(META_LAST_PERIOD_END, period_end.isoformat())
        log.info(
            "posted the weekly digest for %s – %s",
            f"{since:%Y-%m-%d %H:%M %Z}",
            f"{period_end:%Y-%m-%d %H:%M %Z}",
        )

    def _language_sections(self, votes: Sequence[Vote]) -> list[LanguageSection]:
        languages = vote_languages(votes, store_round_language(self.store), self.default_language)
        return language_sections(
            votes, languages, self.model_names, self.untuned, self.baseline, self.min_language_tickets
        )

    @staticmethod
    def _chart(
        rows: Sequence[ModelStats], analysis: Analysis, since: datetime, until: datetime, note: str | None
    ) -> tuple[str, bytes, str]:
        title = f"Draft ratings {since:%d %b} – {until:%d %b %Y}" + (f"\n{note}" if note else "")
        return f"draftdesk-digest-{until:%Y-%m-%d}.png", digest_chart(rows, analysis.trend, title), title

    @staticmethod
    def _share(upload: Callable[[], None], where: str) -> None:
        """The chart is extra: the text has the same numbers, so a failed upload is only logged."""
        try:
            upload()
        except ChatError as exc:
            log.error(
                "could not share the digest chart with %s: %s (needs the files:write scope)", where, exc
            )

    def run_due(self) -> bool:
        """Posts the latest due digest unless it was already posted. Returns True if it posted.

        Replicas: the one that holds "weekly_digest" reads what was posted and posts; the others
        skip, and one that comes later reads that it was posted."""
        due = latest_due(self.trigger, self.clock())
        if due is None:
            return False
        with self.exclusive("weekly_digest") as ours:
            if not ours:
                log.info("another replica is posting the weekly digest")
                return False
            return self._post_unless_posted(due)

    def _post_unless_posted(self, due: datetime) -> bool:
        last = self.store.get_meta(META_LAST_PERIOD_END)
        if last is None:
            # First start: nothing was missed. Mark this period as handled so a new install does
            # not open with a digest of a week it never saw.
            self.store.set_meta(META_LAST_PERIOD_END, due.isoformat())
            return False
        if datetime.fromisoformat(last) >= due:
            return False
        self.post_for(due)
        return True

    def schedule(self, scheduler: BackgroundScheduler) -> None:
        """Catch up once now, then run at every scheduled time (coalesced, with grace for a busy box)."""
        try:
            self.run_due()
        except Exception:
            log.exception("catching up the weekly digest failed; it will be tried at the next scheduled time")
        scheduler.add_job(
            self.run_due,
            self.trigger,
            id="weekly_digest",
            coalesce=True,
            misfire_grace_time=3600,
            replace_existing=True,
        )
