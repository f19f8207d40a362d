"""The study's numbers, computed from votes and outcomes.

``stats``: Tables 1 and 2 per model; ``comparisons``: the paired comparison against the baseline,
ranking, agreement and trend; ``reasons``: why drafts rated 1-2 failed; ``outcomes``: how each
draft compared with the reply the agent sent; ``model_versions``: a row per model and adapter
version; ``promotion``: a candidate adapter against the current one, by ``sequential``'s
always-valid test; ``period_report`` builds a period's report from them, ``report`` renders it
(text, Markdown, JSON, CSV) and ``chart`` draws it. ``sample_data/`` holds the study's own ratings.

Imports only ``core``: never the Slack surfaces, the store's implementations or the drafting
pipeline. All of it is computation on what it is handed, except ``outcomes.observe_replies``, which
records each outcome through the ``core.ports.Store`` it is given.
"""
