"""A ticket from Zendesk to drafts in its Slack thread.

``intake``: the Zendesk webhook and the poller, which queue a ticket's id; ``pipeline``: the
fetch, draft and post stages on their own threads; ``worker``: the steps of one job (read the
ticket, record the round, prompt the models, post parent, notices and drafts); ``grounding``: the
help-centre articles linked under a ticket and given to grounded models; ``staff_names``: the
agents' names that prompts redact; ``crash_points``: where the crash tests kill the process.

May import ``bot.slack`` (the messages it posts), ``bot.config``, ``core``, and
``integrations``' pure helpers; reaches Zendesk, Slack, the models and the store through
``core.ports`` only.
"""
