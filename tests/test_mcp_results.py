"""MCP call results as the text a model is shown."""

from __future__ import annotations

import base64

import mcp_types
import pytest

from tools.mcp_results import error_answer, raw_result
from tools.results import RawToolResult

pytestmark = pytest.mark.unit


def result(*content: mcp_types.ContentBlock, **fields: object) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=list(content), **fields)  # type: ignore[arg-type]


def test_text_blocks_are_joined_as_they_are() -> None:
    got = raw_result(
        result(mcp_types.TextContent(text="one"), mcp_types.TextContent(text="two\nlines"))
    )
    assert got == RawToolResult(text="one\ntwo\nlines", is_error=False, structured=None)


def test_structured_content_alone_is_compact_json_and_kept() -> None:
    value = {"total": 12, "names": ["é", "b"]}
    got = raw_result(result(structured_content=value))
    assert got.text == '{"total":12,"names":["é","b"]}'
    assert got.structured == value


def test_text_wins_over_structured_content_which_is_still_kept() -> None:
    got = raw_result(result(mcp_types.TextContent(text="12"), structured_content={"total": 12}))
    assert got.text == "12" and got.structured == {"total": 12}


def test_images_and_audio_are_named_with_their_decoded_size() -> None:
    png = base64.b64encode(b"\x89PNG" + b"\0" * 1230).decode()  # 1234 bytes
    wav = base64.b64encode(b"RIFF" + b"\0" * 7).decode()  # 11 bytes, padded
    got = raw_result(
        result(
            mcp_types.ImageContent(data=png, mime_type="image/png"),
            mcp_types.AudioContent(data=wav, mime_type="audio/wav"),
        )
    )
    assert got.text == "[image: image/png, 1234 bytes]\n[audio: audio/wav, 11 bytes]"


def test_resources_are_their_text_or_their_uri() -> None:
    got = raw_result(
        result(
            mcp_types.EmbeddedResource(
                resource=mcp_types.TextResourceContents(uri="file:///a.txt", text="hello")
            ),
            mcp_types.EmbeddedResource(
                resource=mcp_types.BlobResourceContents(uri="file:///b.bin", blob="AAAA")
            ),
            mcp_types.ResourceLink(uri="https://example.org/c", name="c"),
        )
    )
    assert got.text == "hello\n[resource: file:///b.bin]\n[resource: https://example.org/c]"


def test_an_error_result_stays_an_error() -> None:
    got = raw_result(result(mcp_types.TextContent(text="no such order"), is_error=True))
    assert got == RawToolResult(text="no such order", is_error=True)


def test_an_empty_answer_is_empty_text() -> None:
    assert raw_result(result()) == RawToolResult(text="")


def test_a_json_rpc_error_answer_is_an_error_result_with_its_code() -> None:
    assert error_answer(-32602, "Unknown tool: x") == RawToolResult(
        text="Unknown tool: x (MCP error -32602)", is_error=True
    )
