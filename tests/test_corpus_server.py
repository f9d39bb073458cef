"""The corpus MCP server over stdio, as a team's worker starts it (``python -m tools.corpus``).

Not a unit module: it starts the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from teams.spec.tools import McpServerSpec
from tests.test_corpus_documents import IDS, RANKINGS
from tools.mcp_sessions import McpSessions
from tools.secrets import ToolSecrets

CORPUS = McpServerSpec(name="corpus", command=["python", "-m", "tools.corpus"])


@pytest.fixture(scope="module")
async def pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[McpSessions]:
    sessions = McpSessions(ToolSecrets(Path(tmp_path_factory.mktemp("no-secrets"))))
    yield sessions
    await sessions.aclose()


async def test_three_tools_all_read_only_and_idempotent(pool: McpSessions) -> None:
    tools = await pool.list_tools(CORPUS)
    assert [t.name for t in tools] == ["search", "read", "exists"]
    for tool in tools:
        assert tool.annotations is not None
        assert (tool.annotations.read_only_hint, tool.annotations.idempotent_hint) == (True, True)
    by_name = {t.name: t for t in tools}
    assert by_name["search"].input_schema["required"] == ["query"]
    assert by_name["search"].input_schema["properties"]["limit"]["default"] == 5
    assert by_name["read"].input_schema["required"] == ["id"]
    assert by_name["exists"].input_schema["required"] == ["ids"]


@pytest.mark.parametrize(("query", "ranking"), RANKINGS)
async def test_search_over_stdio_ranks_exactly_as_the_corpus_does(
    pool: McpSessions, query: str, ranking: list[tuple[str, float]]
) -> None:
    for _ in range(2):
        result = await pool.call_tool(CORPUS, "search", {"query": query}, timeout_s=10)
        assert result.is_error is False
        hits = result.structured["result"]
        assert [(h["id"], h["score"]) for h in hits] == ranking
        assert set(hits[0]) == {"id", "title", "score", "snippet"}


async def test_limit_bounds_the_hits(pool: McpSessions) -> None:
    query, ranking = RANKINGS[0]
    result = await pool.call_tool(CORPUS, "search", {"query": query, "limit": 2}, timeout_s=10)
    assert [h["id"] for h in result.structured["result"]] == [r[0] for r in ranking[:2]]
    refused = await pool.call_tool(CORPUS, "search", {"query": query, "limit": 0}, timeout_s=10)
    assert refused.is_error is True


async def test_read_returns_the_whole_document(pool: McpSessions) -> None:
    result = await pool.call_tool(CORPUS, "read", {"id": "doc-prompt-caching"}, timeout_s=10)
    assert result.is_error is False
    document = result.structured
    assert (document["id"], document["title"]) == ("doc-prompt-caching", "Prompt caching")
    assert "cache_control" in document["text"]


async def test_an_unknown_id_is_an_error_naming_it_and_the_ids_there_are(
    pool: McpSessions,
) -> None:
    result = await pool.call_tool(CORPUS, "read", {"id": "doc-nope"}, timeout_s=10)
    assert result.is_error is True
    assert result.text == (
        "Error executing tool read: no document 'doc-nope': document ids look like 'doc-...' "
        f"({', '.join(IDS)}); search returns them"
    )


async def test_exists_splits_cited_ids_into_known_and_unknown(pool: McpSessions) -> None:
    cited = ["doc-mcp", "doc-made-up", "doc-rate-limits", "doc-mcp"]
    result = await pool.call_tool(CORPUS, "exists", {"ids": cited}, timeout_s=10)
    assert result.structured == {
        "known": ["doc-mcp", "doc-rate-limits"],
        "unknown": ["doc-made-up"],
    }
    assert pool.opened == 1
