"""The PostgreSQL store (``[storage] url``): the same ``core.ports.Store`` in a database that two or
more `draftdesk run` replicas share. ``store`` is the store, ``schema`` its versioned migrations
(``migrations/NNNN_name.sql``), ``rows`` the rows as domain records."""
