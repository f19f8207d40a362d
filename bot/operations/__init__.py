"""Running and watching the bot: ``web`` (the HTTP server: Slack events, the Zendesk webhook,
``/healthz``, ``/metrics``), ``health`` (the answer of ``/healthz``), ``metrics`` (the Prometheus
registry) and ``observed`` (wrappers around the ports that count what passes through them, so the
services carry no metrics code).

The top of ``bot``: may import every other group; none of them imports it.
"""
