"""`draftdesk demo`: the whole loop on one machine with loopback Slack and Zendesk (``run``), small
models trained on the sample (``models``, from the generic replies of ``reading``) and simulated
raters (``raters``).

May import ``draftdesk.app`` (the real wiring), ``bot``, ``finetune``, ``models``, ``integrations``
and ``core``; nothing imports it but ``draftdesk.cli``.
"""
