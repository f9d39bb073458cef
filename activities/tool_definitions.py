"""A run's tool definitions, read back from the blob store by the activities that need them.

``load_team_spec`` stores every definition a run's agents may use once, at the
run's start (:data:`DEFINITIONS`); history carries only the ref. ``call_agent``
reads them to offer the tools and ``call_tool`` to check and run one, so
neither a model turn's nor a tool call's input repeats a schema.

The stored list is content-addressed and never changes, so a worker keeps the
last :data:`CACHED_LISTS` it read (by the stored bytes' hash): a tool loop
reads its definitions once per worker, not once per turn.
"""

from __future__ import annotations

from collections import OrderedDict

from pydantic import TypeAdapter

from contracts.tools import BlobRef, ToolDefinition
from stores.blobs import Blobs

DEFINITIONS = TypeAdapter(list[ToolDefinition])
"""How the run's tool definitions are stored (``load_team_spec`` writes them once)."""
CACHED_LISTS = 128


class ToolDefinitions:
    """The runs' tool definitions by name, through a small per-worker cache."""

    def __init__(self, blobs: Blobs, *, capacity: int = CACHED_LISTS) -> None:
        self._blobs = blobs
        self._capacity = capacity
        self._lists: OrderedDict[str, dict[str, ToolDefinition]] = OrderedDict()

    async def load(self, ref: BlobRef) -> dict[str, ToolDefinition]:
        """Every definition ``ref`` holds, by ``SOURCE.TOOL``; ``BlobError`` if it is gone."""
        cached = self._lists.get(ref.sha256)
        if cached is not None:
            self._lists.move_to_end(ref.sha256)
            return cached
        loaded = {d.name: d for d in DEFINITIONS.validate_json(await self._blobs.get(ref))}
        self._lists[ref.sha256] = loaded
        if len(self._lists) > self._capacity:
            self._lists.popitem(last=False)
        return loaded
