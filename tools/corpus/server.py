"""The corpus MCP server: ``search``, ``read`` and ``exists`` over the shipped documents.

Run it with ``python -m tools.corpus`` (stdio; the worker starts it for a team
that declares it). Every tool is read-only and idempotent and says so in its
annotations, so the run may retry any of its calls.

- ``search(query, limit=5)``: hits ``{id, title, score, snippet}``, best first,
  ranked as :mod:`tools.corpus.documents` describes (deterministic).
- ``read(id)``: ``{id, title, text}``; an unknown id is an error result naming
  it and the ids there are.
- ``exists(ids)``: ``{known, unknown}``; a research gate checks with it that
  every document id a text cites is real.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from tools.corpus.documents import (
    MAX_IDS,
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    Corpus,
    Document,
    Existence,
    SearchHit,
)

SERVER_NAME = "agent-teams-corpus"
READ_ONLY = ToolAnnotations(
    read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False
)


def build_server(corpus: Corpus) -> MCPServer:
    """An MCP server answering from ``corpus``."""
    server = MCPServer(
        SERVER_NAME,
        version="1",
        instructions="Search the research corpus, read its documents, and check cited ids.",
    )

    @server.tool(annotations=READ_ONLY)
    def search(
        query: Annotated[
            str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Words to look for.")
        ],
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Most hits returned.")] = 5,
    ) -> list[SearchHit]:
        """Search the corpus; the best documents first, each with its id and a snippet."""
        return corpus.search(query, limit)

    @server.tool(annotations=READ_ONLY)
    def read(
        id: Annotated[str, Field(min_length=1, max_length=100, description="A document id.")],
    ) -> Document:
        """Read one document whole, by its id (doc-..., as search returns it)."""
        document = corpus.read(id)
        if document is None:
            raise ToolError(
                f"no document {id!r}: document ids look like 'doc-...' "
                f"({', '.join(corpus.ids)}); search returns them"
            )
        return document

    @server.tool(annotations=READ_ONLY)
    def exists(
        ids: Annotated[list[str], Field(max_length=MAX_IDS, description="Document ids to check.")],
    ) -> Existence:
        """Which of these ids are documents of the corpus (to check a text's citations)."""
        return corpus.exists(ids)

    return server


def main() -> None:
    """Serve the shipped corpus over stdio."""
    build_server(Corpus.load()).run()
