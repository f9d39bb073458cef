"""Contracts: the typed messages between workflows, activities and clients.

Every workflow input and result, activity input and result, signal, update and
query payload is a pydantic model here: ``requests``, ``results``, ``calls``,
``outputs``, ``approvals``, ``resolved``, ``evaluation``, ``admission`` (the
controls' local activities) and ``ledger`` (the controls store's rows and alerts).
So are the names they travel under: ``run_interface`` (workflow types, the task
queue, signals, update, query), ``search_attributes`` (the typed keys) and
``activities`` (each activity's name and signature-only stub, which workflows start;
the implementations are in :mod:`activities`). Nothing here reads a file or calls
Temporal, so workflow code imports it freely.
"""
