"""A worker's tools as ``load_team_spec`` and ``call_tool`` see them: one resolver, one executor.

:class:`WorkerTools` puts the worker's Python toolsets (:class:`tools.registry.ToolRegistry`)
and its pool of MCP sessions (:class:`tools.mcp_sessions.McpSessions`) behind the two
interfaces the activities use (:class:`activities.team_specs.ToolResolver`,
:class:`activities.tool_calls.ToolExecutor`), and maps each source's outcomes and
errors to the one vocabulary of a tool call:

- what a tool says back, an error it raises on purpose (``ToolError``, an MCP
  ``isError`` or JSON-RPC error) included, is a result for the model;
- arguments the Python tool's own stricter check refuses are an
  ``invalid_arguments`` result: the tool did not run;
- a tool that could not run is a :class:`activities.tool_calls.ToolRunError`
  (``ToolUnavailable``: nothing was sent, so a retry is safe; ``ToolTimeout`` and
  ``ToolFailed``: it may have run, so only a tool that may run twice is retried);
  a tool or secret this worker does not have is final.

The idempotency key reaches a Python tool in its context and an MCP server in the
call's ``_meta`` (:data:`IDEMPOTENCY_META`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity

from activities.tool_calls import ToolAnswer, ToolBox, ToolRunError
from contracts.tools import ToolCall, ToolDefinition
from security.keyring import KeyRing
from stores.blobs import open_blobs
from teams.spec.team import TeamSpec
from tools.context import ToolSecretError
from tools.errors import ToolCallError, ToolTimeout, ToolUnavailable
from tools.mcp_definitions import mcp_definitions
from tools.mcp_sessions import McpSessions
from tools.python_definitions import InvalidToolArguments
from tools.registry import ToolError, ToolNotFoundError, ToolRegistry, load_toolsets
from tools.safety import files_toolset
from tools.secrets import ToolSecrets
from tools.shop import shop_toolset
from worker.settings import WorkerSettings

IDEMPOTENCY_META = "io.agentteams/idempotency-key"
"""The ``_meta`` key an MCP server finds a call's idempotency key under."""
TIMEOUT_MARGIN = 0.9
"""An MCP call's own timeout, as a share of the activity's: ours fires first, typed."""


@dataclass
class WorkerTools:
    """The worker's Python toolsets and MCP sessions (see the module docstring)."""

    registry: ToolRegistry
    sessions: McpSessions
    secrets_dir: Path | None = None

    async def definitions(self, spec: TeamSpec) -> list[ToolDefinition]:
        """Every tool ``spec``'s agents may call: Python tools, then its MCP servers' tools."""
        python = self.registry.definitions_for(spec)
        mcp = await mcp_definitions(spec, self.sessions) if spec.mcp_servers else []
        return [*python, *mcp]

    async def execute(self, call: ToolCall, *, idempotency_key: str) -> ToolAnswer:
        """Run ``call`` on its source (see the module docstring for what becomes what)."""
        if call.tool.kind == "python":
            return await self._python(call)
        return await self._mcp(call, idempotency_key)

    async def aclose(self) -> None:
        """Close every MCP session (their servers stop); once, when the worker stops."""
        await self.sessions.aclose()

    async def _python(self, call: ToolCall) -> ToolAnswer:
        info = activity.info()
        try:
            context = self.registry.context_for(
                call.tool.name,
                workflow_id=info.workflow_id or "",
                run_id=info.workflow_run_id or "",
                call_id=call.call_id,
                agent=call.agent,
                tenant=call.tenant,
                secrets_dir=self.secrets_dir,
            )
            text, _ = await self.registry.run(call.tool.name, call.arguments, context)
        except ToolError as err:
            return ToolAnswer(err.message, is_error=True)
        except InvalidToolArguments as err:
            return ToolAnswer(str(err), is_error=True, invalid_arguments=True)
        except ToolNotFoundError as err:
            raise ToolRunError(str(err), kind="ToolNotFound", retryable=False) from None
        except ToolSecretError as err:
            raise ToolRunError(str(err), kind="ToolSecretMissing", retryable=False) from None
        return ToolAnswer(text)

    async def _mcp(self, call: ToolCall, idempotency_key: str) -> ToolAnswer:
        server = call.server
        if server is None:
            raise ToolRunError(
                f"{call.tool.name}: the call names no MCP server",
                kind="ToolNotFound",
                retryable=False,
            )
        budget = activity.info().start_to_close_timeout
        timeout_s = budget.total_seconds() * TIMEOUT_MARGIN if budget else call.tool.timeout_s
        try:
            result = await self.sessions.call_tool(
                server,
                call.tool.tool,
                call.arguments,
                timeout_s=timeout_s,
                meta={IDEMPOTENCY_META: idempotency_key},
            )
        except ToolUnavailable as err:
            raise ToolRunError(str(err), kind="ToolUnavailable", retryable=True) from None
        except ToolTimeout as err:
            raise ToolRunError(str(err), kind="ToolTimeout", retryable=True) from None
        except ToolCallError as err:
            raise ToolRunError(str(err), kind="ToolFailed", retryable=True) from None
        return ToolAnswer(_shown(result.text, result.structured), is_error=result.is_error)


def _shown(text: str, structured: object) -> str:
    """What the model is shown of an MCP result: its structured content as JSON, if any.

    A server that returns structured content also sends it serialized as text (the
    spec's rule), but a list comes back as one text block per item; the structured
    form is one valid JSON value. A non-object value arrives wrapped, as
    ``{"result": ...}``: unwrapped here.
    """
    if structured is None:
        return text
    if isinstance(structured, dict) and set(structured) == {"result"}:
        structured = structured["result"]
    return json.dumps(structured, ensure_ascii=False, separators=(",", ":"))


@dataclass
class OpenTools:
    """The worker's tools, opened: what ``build_workers`` takes, and what to close after."""

    box: ToolBox
    tools: WorkerTools

    def describe(self) -> str:
        """``python toolsets shop, files; blobs file:...`` for the start-up line."""
        sources = ", ".join(self.tools.registry.sources) or "none"
        sealed = "sealed" if self.box.blobs.sealed else "UNENCRYPTED"
        return f"python toolsets {sources}, MCP servers from team files, blobs {sealed}"

    async def aclose(self) -> None:
        """Stop the MCP servers this worker started; release the blob store."""
        await self.tools.aclose()
        await self.box.blobs.aclose()


def worker_tools(settings: WorkerSettings) -> WorkerTools:
    """The worker's toolsets (shipped and the user's) and MCP sessions; nothing starts yet.

    MCP servers start on a team's first use of them; :meth:`WorkerTools.aclose` stops them.
    """
    toolsets = [shop_toolset(settings.shop_db)]
    if settings.files_root is not None:
        toolsets.append(files_toolset(settings.files_root))
    toolsets += load_toolsets(settings.toolsets)
    return WorkerTools(
        registry=ToolRegistry(toolsets),
        sessions=McpSessions(ToolSecrets(settings.tool_secrets_dir)),
        secrets_dir=settings.tool_secrets_dir,
    )


async def open_tools(settings: WorkerSettings, keyring: KeyRing | None) -> OpenTools:
    """The worker's tools from its settings: shipped and user toolsets, MCP sessions, blobs."""
    tools = worker_tools(settings)
    blobs = await open_blobs(settings.blob_url, keyring)
    return OpenTools(box=ToolBox(resolver=tools, executor=tools, blobs=blobs), tools=tools)
