"""Entry points: the `draftdesk` command line, the wiring of `draftdesk run`, and the offline demo.

The top layer: it may import every package; nothing imports it (docs/architecture.md).
"""
