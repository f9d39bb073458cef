"""Model providers behind one interface (``base.ModelProvider``).

``simulated`` (offline, deterministic, the default without an API key) and
``anthropic`` (the Messages API through the ``anthropic`` SDK); ``errors`` maps
their failures onto the error classes Temporal's retry policies act on.
"""
