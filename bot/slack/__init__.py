"""What people see and do in Slack.

The ticket's thread (``blocks`` builds every Block Kit payload, ``draft_view`` a draft as agents
see it, ``parent_status`` the parent message's status line), the buttons and reactions
(``listeners``, with ``AfterAck`` doing the slow part after Slack's ack), the "Send to Zendesk"
modal (``sending``, its views in ``send_views``), App Home (``home``), the slash command
(``commands``) and the weekly digest (``digest``).

May import ``bot.reporting`` (the numbers a digest or App Home shows), ``bot.config``, ``core``.
Reaches Slack, Zendesk and the store through ``core.ports`` only.
"""
