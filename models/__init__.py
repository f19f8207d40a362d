"""The model runtime behind the drafts.

- ``spec``: what config.toml says about each model (``ModelSpec``) and the engine (``EngineSettings``).
- ``engine``: ``DraftEngine``, bases loaded once in 4-bit, mixed-adapter batches (``sampling``,
  ``batching``, ``cleanup`` are its parts).
- ``openai_backend``: models served by vLLM or ``draftdesk serve-models``.
- ``router``: ``build_backend``, the one runtime the bot talks to.
- ``serve``: ``draftdesk serve-models``, the engine behind an OpenAI-compatible API.
- ``tiny``: small local models for tests and the demo.
"""
