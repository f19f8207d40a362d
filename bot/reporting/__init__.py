"""The study's numbers, computed from votes and outcomes. Pure: no Slack, no store, no clock of its own.

``stats``: Tables 1 and 2 per model; ``comparisons``: the paired comparison against the baseline,
ranking, agreement and trend; ``reasons``: why drafts rated 1-2 failed; ``outcomes``: how each
draft compared with the reply the agent sent; ``model_versions``: a row per model and adapter
version; ``promotion``: a candidate adapter against the current one; ``period_report`` builds a
period's report from them, ``report`` renders it (text, Markdown, JSON, CSV) and ``chart`` draws
it. ``sample_data/`` holds the study's own ratings.

Imports only ``core``: never the Slack surfaces, the store or the drafting pipeline.
"""
