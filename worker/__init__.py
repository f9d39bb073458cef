"""The worker process: ``python -m worker``.

Settings come from the environment (:class:`worker.settings.WorkerSettings`);
clients, providers and the catalog are built in :func:`worker.main.run_worker`
and passed in, never at import time.
"""
