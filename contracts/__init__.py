"""Contracts: the typed messages between workflows, activities and clients.

Every workflow input and result, activity input and result, signal, update and
query payload is a pydantic model here (and the names they travel under, in
``run_interface``): ``requests``, ``results``, ``calls``, ``outputs``,
``approvals``, ``resolved``, ``evaluation``, ``admission`` (the controls' local
activities) and ``ledger`` (the controls store's rows and alerts). Nothing here
reads a file or calls Temporal, so workflow code imports it freely.
"""
