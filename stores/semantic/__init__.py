"""The semantic response cache: a call is answered by an earlier one whose request meant the same.

:mod:`stores.semantic.contract` is the contract (scopes, lookups, the
:class:`~stores.semantic.contract.SemanticCache` protocol); SQLite (with the
sqlite-vec index where it loads), PostgreSQL (pgvector where the server has it)
and Redis implement it on top of :mod:`stores.semantic.backend`;
:func:`stores.semantic.factory.open_semantic_cache` picks one by URL, with the
same schemes as the exact-match cache (:mod:`stores.cache_factory`).
"""
