"""An MCP ``CallToolResult`` (or a JSON-RPC error answer) as a :class:`RawToolResult`.

The model is shown text, so every content block becomes text:

- a text block as it is;
- an image or audio block as ``[image: image/png, 1234 bytes]`` (its size
  decoded from the base64, the data itself dropped: the Messages API's tool
  results could carry images, but a tool's picture is rarely what an agent
  needs and it would bloat history);
- an embedded resource as its text, or ``[resource: URI]`` when it is binary; a
  resource link as ``[resource: URI]``.

Blocks are joined by a newline. When there is no text at all but a structured
value, the text is that value as compact JSON (a tool that returns only
``structuredContent`` still says something). A server that answers a call with
a JSON-RPC error (mcp-server-time does for an unknown tool, code -32602) gets
the same treatment as an ``isError`` result (what a plain ``MCPServer``
returns): an error result whose text is the server's message.
"""

from __future__ import annotations

import json

import mcp_types

from tools.results import RawToolResult


def raw_result(result: mcp_types.CallToolResult) -> RawToolResult:
    """``result`` as text for the model, with its error flag and structured value."""
    parts = [_block_text(block) for block in result.content]
    text = "\n".join(parts)
    structured = result.structured_content
    if not text and structured is not None:
        text = json.dumps(structured, separators=(",", ":"), ensure_ascii=False)
    return RawToolResult(text=text, is_error=result.is_error, structured=structured)


def error_answer(code: int, message: str) -> RawToolResult:
    """A server's JSON-RPC error answer to a call, as an error result the model is shown."""
    return RawToolResult(text=f"{message} (MCP error {code})", is_error=True)


def _block_text(block: mcp_types.ContentBlock) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        return f"[{block.type}: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, mcp_types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, mcp_types.TextResourceContents):
            return resource.text
        return f"[resource: {resource.uri}]"
    return f"[resource: {block.uri}]"


def _decoded_size(data: str) -> int:
    """Bytes the base64 ``data`` decodes to, without decoding it."""
    body = "".join(data.split()).rstrip("=")
    return len(body) * 3 // 4
