"""The `draftdesk` subcommands that have a module of their own, registered by ``draftdesk.cli``:
``doctor`` (and ``health_checks``, the upstream checks it shares with ``/healthz``), ``jobs``,
``backup``, ``restore`` (with ``store_access``: the store directly, or through the running bot),
``models``, ``feedback`` and ``zendesk``.

May import ``bot``, ``finetune``, ``models``, ``integrations`` and ``core``; not ``draftdesk.cli``,
``draftdesk.app`` or the demo.
"""
