"""The bot's services: what `draftdesk run` does with tickets, drafts, ratings and reports.

One folder per concern, each importing only the ones below it (``.importlinter`` checks it)::

    operations/  health, metrics and the web server: watching the bot and serving HTTP
    drafting/    a ticket from intake to posted drafts: webhook and poller, pipeline, worker
    slack/       what people see and click in Slack: the thread, the send modal, App Home, digest
    reporting/   the study's numbers from votes and outcomes: tables, comparisons, chart, promotion
    store/       the ``core.ports.Store`` implementations and their files, locks and requests

``config.py`` (the bot's sections of ``config.toml``) and ``errors.py`` sit under all of them. The
services reach Slack, Zendesk, the models and the store through ``core.ports``; only the entry
points (``draftdesk/``) pick the concrete classes.
"""
