"""Errors of MCP tools: starting or reaching a server, listing and calling its tools.

No message here ever carries a secret's value: a message names the server, the
tool and the cause, and causes taken from the outside world (an OS error, a
server's stderr, an HTTP error) are redacted of every secret value the server
was given before they are quoted.

Tree (with the tool errors that live beside the things they are about)::

    AgentTeamsError
    ├── ToolCallError            an MCP operation produced no result
    │   ├── ToolUnavailable      the server cannot be started or reached: nothing was sent
    │   ├── ToolTimeout          the call outlived its timeout: it may have run
    │   └── ToolFailed           the call was sent but gave no usable answer: it may have run
    ├── tools.context.ToolSecretError     a secret cannot be read (missing, empty, a bad name)
    └── TeamSpecError
        └── errors.ToolResolutionError  a team's tools do not match what its servers offer

Retrying: after :class:`ToolUnavailable` the call certainly did not run, so it
may be retried whatever the tool does; after :class:`ToolTimeout` or
:class:`ToolFailed` it may have run, so only a tool without side effects or an
idempotent one may run again (:attr:`contracts.tools.ToolDefinition.retried`).

A tool that *answers* with an error (an ``isError`` result, or a JSON-RPC error
such as "Unknown tool") is not an exception: it is a
:class:`tools.results.RawToolResult` with ``is_error=True``, which the model is
shown like any answer.
"""

from __future__ import annotations

from errors import AgentTeamsError


class ToolCallError(AgentTeamsError):
    """An MCP operation (starting a server, listing or calling a tool) produced no result.

    ``server`` is the MCP server's name in the team file; ``tool`` the tool's
    (None when listing).
    """

    def __init__(self, message: str, *, server: str, tool: str | None = None) -> None:
        super().__init__(message)
        self.server = server
        self.tool = tool


class ToolUnavailable(ToolCallError):
    """The server cannot be started or reached; nothing was sent to it.

    The command does not exist, the process exits before it answers
    ``initialize``, the URL refuses connections, a secret is missing, or the
    call waited its whole timeout for the server to start or for a free slot. The
    message names the server and the cause (redacted of secret values).
    """


class ToolTimeout(ToolCallError):
    """A call (or a listing) took longer than its timeout.

    The server may have run the call; it was asked to cancel it.
    """

    def __init__(self, message: str, *, server: str, tool: str | None, timeout_s: float) -> None:
        super().__init__(message, server=server, tool=tool)
        self.timeout_s = timeout_s


class ToolFailed(ToolCallError):
    """A call was sent but gave no usable answer.

    The server exited or the connection dropped before it answered, or its
    answer breaks the protocol (a structured result that does not match the
    tool's own output schema). The server may have run the call.
    """
