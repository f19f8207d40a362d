"""Wires the parts of `draftdesk run` into one process: Bolt, web server, intake, worker, digest."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from slack_bolt import App
from slack_bolt.error import BoltError

from bot.config import Settings
from bot.drafting.grounding import HelpCenterIndex, HelpCenterSources, help_center_links
from bot.drafting.intake import Poller, handle_zendesk_webhook
from bot.drafting.pipeline import Pipeline
from bot.drafting.shared_help_center import SharedHelpCenterRefresh
from bot.drafting.staff_names import StaffNames
from bot.drafting.worker import TicketProcessor, Worker
from bot.errors import StartupError
from bot.operations.health import Check, HealthService
from bot.operations.metrics import Metrics
from bot.operations.observed import ObservedBackend, ObservedGateway, ObservedStore
from bot.operations.web import DraftdeskWSGI, WebServer
from bot.reporting.outcomes import replies_observer
from bot.slack.commands import register_report_command
from bot.slack.digest import DigestService
from bot.slack.home import AgentHome
from bot.slack.listeners import AfterAck, DraftActions, new_bolt_app, register_listeners
from bot.slack.parent_status import ParentStatus
from bot.slack.sending import SendFlow
from bot.store.lock import StoreInUse
from bot.store.partitioned import PartitionedStore
from bot.store.requests import StoreRequests
from core.coordination import Exclusive, SharedList, alone
from core.db_url import masked
from core.domain import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Job, utcnow
from core.ports import ChatPoster, DraftBackend, Store
from draftdesk.commands.health_checks import upstream_checks
from draftdesk.commands.models import standings
from draftdesk.commands.stores import open_database
from integrations.language_detector import TicketLanguages, UnknownLanguages
from integrations.slack import SlackPoster, make_web_client
from integrations.zendesk import RetryPolicy, ZendeskAccessDenied, ZendeskGateway, ZendeskUnavailable

log = logging.getLogger(__name__)

# The send dialog's Zendesk calls: the agent is told within seconds, then sends again if need be.
INTERACTIVE_RETRY = RetryPolicy(max_retries=2, max_wait=10.0, backoff_initial=1.0, backoff_max=4.0)


def load_backend(settings: Settings) -> DraftBackend:
    """The model runtime `[[models]]` asks for: local engine, OpenAI-compatible servers, or both."""
    from models.engine import ModelLoadError
    from models.router import build_backend

    try:
        return build_backend(settings.models, settings.engine)
    except (ModelLoadError, ValueError) as exc:  # RemoteModelError is a ValueError too
        raise StartupError(f"the draft models could not be loaded: {exc}") from exc


def check_zendesk_api_user(zendesk: ZendeskGateway) -> None:
    """Stops start-up on credentials that can never work; an unreachable Zendesk only warns,
    since webhooks still queue and the worker retries once Zendesk is back."""
    try:
        user = zendesk.api_user()
    except ZendeskAccessDenied as exc:
        raise StartupError(f"Zendesk refused the API user: {exc}") from exc
    except ZendeskUnavailable as exc:
        log.warning("could not check the Zendesk API user, starting anyway: %s", exc)
        return
    if not user.id:
        raise StartupError(
            f"Zendesk did not sign in ZENDESK_EMAIL with ZENDESK_API_TOKEN at {zendesk.base_url} "
            "(it answered as an anonymous user): check both, and that token access is enabled in "
            "Admin Center → Apps and integrations → Zendesk API"
        )
    if user.role not in ("agent", "admin"):
        raise StartupError(
            f"the Zendesk API user {user.email or user.id} is an {user.role}: drafts need an agent or admin "
            "who can read the tickets and add internal notes; set ZENDESK_EMAIL to such a user"
        )
    log.info("Zendesk API user: %s (%s)", user.email or user.id, user.role)


@dataclass
class Draftdesk:
    settings: Settings
    store: Store
    poster: ChatPoster
    zendesk: ZendeskGateway
    worker: Worker
    actions: DraftActions
    sending: SendFlow
    after_ack: AfterAck
    bolt: App
    digest: DigestService
    poller: Poller | None
    web: WebServer | None
    scheduler: BackgroundScheduler
    help_center: HelpCenterIndex | None = None
    shared_help_center: SharedHelpCenterRefresh | None = None  # replicas on one database
    exclusive: Exclusive = alone  # replicas on PostgreSQL: polling Zendesk is one replica's at a time
    _stop: threading.Event = field(default_factory=threading.Event)
    metrics: Metrics = field(default_factory=Metrics)
    health_service: HealthService | None = None
    store_requests: StoreRequests | None = None
    parent_status: ParentStatus | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _socket_handler: Any = None

    def health(self) -> dict:
        """GET /healthz: ``ok`` false (503) when Slack, Zendesk, the models, the worker or the queue
        is degraded."""
        assert self.health_service is not None
        return self.health_service.report()

    def worker_alive(self) -> bool:
        """Whether the worker thread runs (before start: whether it is yet to start)."""
        worker = next((t for t in self._threads if t.name == "worker"), None)
        return worker is None or worker.is_alive()

    def start(self) -> None:
        """Starts every part; if one fails, stops those already running and raises StartupError."""
        try:
            self._start_parts()
        except Exception as exc:
            self.stop()
            if isinstance(exc, StartupError):
                raise
            raise StartupError(f"could not start: {type(exc).__name__}: {exc}") from exc

    def _start_parts(self) -> None:
        # Slack first: a rejected token should stop start-up before anything else runs.
        if self.settings.slack.mode == "socket":
            self._connect_socket_mode()
        interrupted = self.store.requeue_interrupted_jobs()
        if interrupted:
            log.info("re-queued %s job(s) interrupted by the last shutdown", interrupted)
        resolved = self.sending.resolve_pending()
        if resolved:
            log.info("resolved %s send(s) to Zendesk interrupted by the last shutdown", resolved)
        pipeline = Pipeline(self.worker)
        worker_thread = threading.Thread(target=pipeline.run, args=(self._stop,), name="worker", daemon=True)
        worker_thread.start()
        self._threads.append(worker_thread)
        if self.store_requests is not None:  # `draftdesk jobs retry|drop`, `backup` while the bot runs
            requests_thread = threading.Thread(
                target=self.store_requests.run, args=(self._stop,), name="store-requests", daemon=True
            )
            requests_thread.start()
            self._threads.append(requests_thread)
        if self.poller is not None:
            self.scheduler.add_job(
                self._poll,
                IntervalTrigger(seconds=self.settings.intake.poll_interval_seconds),
                id="zendesk_poll",
                next_run_time=utcnow(),
                max_instances=1,
                coalesce=True,
            )
        if self.settings.digest.enabled:
            self.digest.schedule(self.scheduler)
        if self.help_center is not None:
            self.scheduler.add_job(
                self.refresh_help_center,
                IntervalTrigger(hours=self.settings.grounding.refresh_hours),
                id="help_center_refresh",
                next_run_time=utcnow(),
                max_instances=1,
                coalesce=True,
            )
        self.scheduler.start()
        if self.web is not None:
            self.web.start()
            log.info("listening on %s:%s", self.settings.server.host, self.web.port)

    def _connect_socket_mode(self) -> None:
        from slack_sdk.errors import SlackApiError

        from integrations.slack_socket_mode import CheckedSocketModeHandler

        self._socket_handler = CheckedSocketModeHandler(self.bolt, self.settings.secrets.slack_app_token)
        try:
            self._socket_handler.connect()
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown_error")
            raise StartupError(
                f"Slack refused the Socket Mode connection ({error}): check SLACK_APP_TOKEN is an app-level "
                "token (xapp-…) with the connections:write scope, and that Socket Mode is enabled for the app"
            ) from exc
        # slack_sdk swallows a failed WebSocket handshake, so check rather than assume.
        if not self._socket_handler.client.is_connected():
            raise StartupError(
                "could not open the Socket Mode WebSocket: check the network can reach Slack (wss, port 443)"
            )
        log.info("connected to Slack in Socket Mode")

    def refresh_help_center(self) -> None:
        """Reads the Help Center's listings into the index (replicas: one reads, the others adopt)."""
        assert self.help_center is not None
        try:
            if self.shared_help_center is None:
                how, changed = "read", self.help_center.refresh(self.zendesk)
            else:
                how, changed = self.shared_help_center.refresh()
        except Exception as exc:  # Zendesk down, a bad article: the old index keeps serving
            log.warning("could not refresh the Help Center index; retrying at the next interval: %s", exc)
            return
        if how == "skipped":
            log.info("Help Center index: another replica reads the Help Center now; adopted next time")
            return
        where = "from Zendesk" if how == "read" else "as another replica read them"
        log.info(
            "Help Center index %s: %s article(s) changed, %s in all", where, changed, len(self.help_center)
        )

    def _poll(self) -> None:
        assert self.poller is not None
        try:
            with self.exclusive("zendesk_poll") as ours:
                if ours:  # else another replica polls now, from the cursor they share
                    self.poller.poll_once()
        except Exception:
            log.exception("polling Zendesk failed; retrying at the next interval")

    def stop(self) -> None:
        self._stop.set()
        self.worker.wake.set()
        if self._socket_handler is not None:
            self._socket_handler.close()
        if self.web is not None:
            self.web.stop()
        self.after_ack.shutdown()  # the clicks already acked still reach the store before it closes
        if self.parent_status is not None:
            self.parent_status.close()  # the status lines asked for, before the store closes
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for thread in self._threads:
            thread.join(timeout=30)
        self.store.close()

    def run_until_signal(self) -> None:
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        done.wait()
        log.info("shutting down")
        self.stop()


def queue_jobs(store: Store) -> list[Job]:
    """The jobs in the queue (queued, running, failed), without the archive of finished ones."""
    return [job for status in (JOB_QUEUED, JOB_RUNNING, JOB_FAILED) for job in store.jobs(status)]


def build(settings: Settings, backend: DraftBackend | None = None) -> Draftdesk:
    """Builds every part; the cheap checks (store, Slack token) come before loading the models."""
    if settings.database is not None:
        return _build_replica(settings, backend)
    metrics = Metrics()
    try:
        partitioned = PartitionedStore(settings.storage_path)
    except StoreInUse as exc:
        raise StartupError(f"{exc}: is draftdesk already running on this store? Stop it first") from exc
    except (RuntimeError, OSError) as exc:
        raise StartupError(f"cannot open the store at {settings.storage_path}: {exc}") from exc
    store: Store = ObservedStore(partitioned, metrics)
    try:
        app = _build(settings, backend, store, metrics)
    except BaseException:
        store.close()  # frees the store's writer lock for the next try
        raise
    app.store_requests = StoreRequests(
        settings.storage_path, store, on_change=app.worker.wake.set, snapshot=partitioned.snapshot
    )
    return app


def _build_replica(settings: Settings, backend: DraftBackend | None) -> Draftdesk:
    """`draftdesk run` on PostgreSQL: one replica of any number. No store file, no lock, no request
    folder (commands use the database themselves); the digest and polling are one replica's at a time."""
    from bot.store.pg.store import DatabaseUnavailable, PostgresStore

    assert settings.database is not None
    metrics = Metrics()
    try:
        database: PostgresStore = open_database(settings.database)  # type: ignore[assignment]
    except DatabaseUnavailable as exc:
        raise StartupError(str(exc)) from exc
    log.info("store: PostgreSQL %s, this replica %s", masked(settings.database.url), database.replica)
    store: Store = ObservedStore(database, metrics)
    try:
        return _build(
            settings, backend, store, metrics, exclusive=database.exclusive, database=database.check
        )
    except BaseException:
        store.close()
        raise


def _build(
    settings: Settings,
    backend: DraftBackend | None,
    store: Store,
    metrics: Metrics,
    exclusive: Exclusive = alone,
    database: Check | None = None,
) -> Draftdesk:
    secrets = settings.secrets
    client = make_web_client(secrets.slack_bot_token or "", base_url=settings.slack.api_url)
    poster: ChatPoster = ObservedGateway(SlackPoster(client), metrics, "slack")
    http_mode = settings.slack.mode == "http"
    try:  # Bolt checks the bot token with auth.test here
        bolt = new_bolt_app(client, secrets.slack_signing_secret or "", verify_requests=http_mode)
    except BoltError as exc:
        raise StartupError(
            f"Slack did not accept SLACK_BOT_TOKEN ({exc}): use the app's Bot User OAuth Token (xoxb-…) "
            f"and check [slack] api_url ({settings.slack.api_url})"
        ) from exc
    credentials = (settings.zendesk.url, secrets.zendesk_email or "", secrets.zendesk_api_token or "")
    zendesk = ZendeskGateway.from_settings(*credentials)
    check_zendesk_api_user(zendesk)
    grounding = settings.grounding
    links = help_center_links(grounding.enabled, grounding.locales, zendesk.help_center_article_count)
    level = logging.INFO if links.checked else logging.WARNING  # unchecked: Zendesk did not answer
    log.log(level, "Help Center links %s: %s", "on" if links.on else "off", links.why)
    zendesk = ObservedGateway(zendesk, metrics, "zendesk")  # type: ignore[assignment]
    # An agent waits on the send dialog: a few quick retries, not the worker's patient ones (2-32 s).
    interactive = ObservedGateway(
        ZendeskGateway.from_settings(*credentials, retry=INTERACTIVE_RETRY), metrics, "zendesk"
    )
    languages = TicketLanguages(settings.languages)
    try:  # loads the detector's model now (about a second), not while the first ticket waits
        languages.detector.check()
    except UnknownLanguages as exc:
        raise StartupError(str(exc)) from exc
    backend = ObservedBackend(backend or load_backend(settings), metrics)
    model_names = [m.name for m in settings.models]
    index, sources = None, None
    grounded = [m.name for m in settings.models if m.grounding]
    if links.on or grounded:  # the links and the grounded models' passages come from one index
        index = HelpCenterIndex(grounding.path, grounding.locales)
        shown = grounding.articles_shown if links.on else 0
        sources = HelpCenterSources(index, grounded, shown, grounding.prompt_tokens)
    parent_status = ParentStatus(store, poster)
    processor = TicketProcessor(
        store,
        zendesk,
        poster,
        backend,
        model_names,
        settings.slack.channel,
        settings.worker.product_name,
        observe_replies=replies_observer(store),
        sources=sources,
        # replicas on one database read the names once an hour between them
        staff_names=StaffNames(
            zendesk, shared=None if exclusive is alone else SharedList(store, exclusive)
        ).names,
        parent_status=parent_status.refresh_later,
        languages=languages,
        model_languages={m.name: m.languages for m in settings.models},
        exclusive=exclusive,
    )
    worker = Worker(store, processor, settings.worker)
    actions = DraftActions(store, poster)
    sending = SendFlow(
        store,
        poster,
        poster,
        interactive,
        allow_public=settings.zendesk.allow_public_replies,
        parent_status=parent_status.refresh_later,
    )
    after_ack = AfterAck()
    home = AgentHome(store, poster, model_names, settings.digest.users)
    register_listeners(bolt, actions, after_ack, sending, home)
    webhook = None
    if settings.intake.mode in ("webhook", "both"):
        secret = secrets.zendesk_webhook_secret or ""

        def webhook(body: bytes, headers: dict[str, str]):  # type: ignore[no-redef]
            return handle_zendesk_webhook(
                body, headers, secret, store, worker.wake.set, settings.server.max_body_bytes
            )

    poller = None
    if settings.intake.mode in ("poll", "both"):
        poller = Poller(store, zendesk, settings.intake.poll_since, on_queued=worker.wake.set)
    untuned = [m.name for m in settings.models if not m.adapter]
    digest = DigestService(
        store,
        poster,
        settings.digest,
        model_names,
        untuned=untuned,
        candidates=lambda votes: standings(votes, settings),
        default_language=settings.languages.default,
        min_language_tickets=settings.languages.compare_min_tickets,
        exclusive=exclusive,
    )
    register_report_command(bolt, digest.send_report, settings.digest.users, after_ack)
    scheduler = BackgroundScheduler(timezone=settings.digest.timezone)
    app = Draftdesk(
        settings,
        store,
        poster,
        zendesk,
        worker,
        actions,
        sending,
        after_ack,
        bolt,
        digest,
        poller,
        None,
        scheduler,
        help_center=index,
        exclusive=exclusive,
        metrics=metrics,
    )
    metrics.watch_queue(lambda: queue_jobs(store))
    app.parent_status = parent_status
    if index is not None and exclusive is not alone:
        interval = grounding.refresh_hours * 3600
        app.shared_help_center = SharedHelpCenterRefresh(
            index, zendesk, SharedList(store, exclusive), interval
        )
    checks = upstream_checks(settings)
    if database is not None:
        checks["database"] = database
    app.health_service = HealthService(
        settings.health,
        checks,
        jobs=lambda: queue_jobs(store),
        worker_beat_age=metrics.worker_beat_age,
        worker_alive=app.worker_alive,
    )
    if http_mode or webhook is not None or settings.server.health_check:
        wsgi = DraftdeskWSGI(
            bolt if http_mode else None,
            webhook,
            app.health,
            settings.server.max_body_bytes,
            slack_signing_secret=secrets.slack_signing_secret,
            metrics=metrics.render,
        )
        server = settings.server
        app.web = WebServer(
            wsgi,
            server.host,
            server.port,
            threads=server.threads,
            backlog=server.backlog,
            max_body_bytes=server.max_body_bytes,
        )
    return app
