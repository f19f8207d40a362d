"""The store: where the bot keeps jobs, rounds, drafts, votes, sends and outcomes (``core.ports.Store``).

``partitioned`` is the store of `draftdesk run` (a small hot file plus partition files, with
``lock``'s one-writer lock, ``atomic_storage``'s crash-safe writes and ``documents``' record
formats; it also migrates, and reads read-only, a store in the first version's single-file layout);
``memory`` is the same contract in memory, for tests and experiments. ``requests`` lets commands ask the
running bot to act on its store (``job_actions``: retry, drop; a snapshot for backups);
``pg`` is the PostgreSQL store of `[storage] url` (replicas share it: job leases, advisory locks);
``votes_io`` is the votes' row format, in the store and in CSV/JSON Lines files.

Imports only ``core`` (and its own modules): none of the services.
"""
