"""The kernel: domain types, the prompt format, configuration primitives and the contracts
(ports) the other layers meet at. It imports nothing of draftdesk's (docs/architecture.md)."""
