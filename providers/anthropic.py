"""The ``anthropic`` provider: real Claude calls through the official SDK.

Invariants:
- The SDK never retries (``max_retries=0``): Temporal owns every retry, so each
  attempt is visible in history and none is paid for twice.
- Every SDK error is classified here, once, into a :mod:`contracts.provider_errors`
  type; ``retry-after-ms``/``retry-after`` become ``retry_after_s``.
- Calls stream, reporting output tokens as they arrive so the activity can
  heartbeat; the request timeout comes from the agent's spec.
- Structured output (verdicts, routes, a JSON agent's own schema) uses a forced
  tool call whose input schema is the answer's JSON schema; the activity
  validates it.
- An agent's own tools are offered as ``SOURCE__TOOL``; the model's ``tool_use``
  blocks come back as :class:`contracts.tools.ToolUse` for the workflow to run,
  one activity each, and their results go back as fenced ``tool_result`` blocks.
  A ``pause_turn`` (a long turn the API paused) is sent back and continued in
  the same attempt, at most :data:`MAX_PAUSES` times; its usage is counted.
- The system prompt and the stable part of the user turn (task and handoffs)
  are marked for prompt caching, with the agent's ``prompt_cache_ttl``; the API
  caches them only from the model's minimum prefix up, and bills 1-hour
  writes apart (``cache_creation.ephemeral_1h_input_tokens``).
- The API key lives only in the client. Error messages are redacted of it, so
  it can never reach a log, an ``ApplicationError`` or workflow history.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Mapping
from typing import Any, cast

import anthropic
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from contracts.calls import AgentCall, StopReason
from contracts.outputs import DIRECT_ROUTE, ReviewVerdict, RouteDecision
from contracts.provider_errors import (
    AuthenticationFailed,
    ContextOverflow,
    InvalidRequest,
    ModelNotFound,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RequestTooLarge,
)
from contracts.tools import ToolDefinition, ToolTurn, ToolUse
from money.pricing import TokenUsage
from prompting.render import render_user_parts
from providers.base import ModelResponse, ProgressCallback, TextCallback
from security.injection.detection import fence
from teams.spec.team import OutputKind

log = logging.getLogger(__name__)

VERDICT_TOOL = "review_verdict"
ROUTE_TOOL = "route_decision"
ANSWER_TOOL = "respond"
"""A JSON agent's answer, forced as a tool call whose input schema is its output_schema."""
_ANSWER_TOOLS = frozenset({VERDICT_TOOL, ROUTE_TOOL, ANSWER_TOOL})
"""Tools that carry the answer itself: never an agent's own (those are SOURCE__TOOL)."""
CHARS_PER_TOKEN = 4
MAX_PAUSES = 4
"""``pause_turn`` answers one call follows up before it returns what it has."""
"""Only for progress heartbeats while streaming; billing uses the API's usage."""
_STOP_REASONS: set[str] = {
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "refusal",
    "pause_turn",
}
_PROMPT_TOO_LONG = ("prompt is too long", "prompt_too_long", "context window")


class AnthropicConfig(BaseModel):
    """How to reach the Messages API. The key is a ``SecretStr``: never printed."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr
    base_url: str | None = None
    default_timeout_s: float = Field(default=600.0, gt=0)
    count_tokens: bool = True
    """Use the token-count endpoint for context budgets (else a local estimate)."""


class AnthropicProvider:
    """Claude through ``AsyncAnthropic`` (see the module docstring)."""

    name = "anthropic"

    def __init__(self, config: AnthropicConfig) -> None:
        self._config = config
        self._secret = config.api_key.get_secret_value()
        self._client = build_client(config)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def generate(
        self,
        call: AgentCall,
        *,
        attempt: int,
        on_progress: ProgressCallback,
        on_text: TextCallback | None = None,
    ) -> ModelResponse:
        """Stream one Messages API call, reporting output tokens as they arrive."""
        params = build_request(call)
        timeout = call.request_timeout_s or self._config.default_timeout_s
        started = time.monotonic()
        paused: list[Any] = []
        before = TokenUsage()
        while True:
            message = await self._stream(params, timeout, before, on_progress, on_text)
            if message.stop_reason != "pause_turn" or len(paused) >= MAX_PAUSES:
                break
            # A long turn the API paused (server-side tools): send it back as the
            # assistant's turn so far and the model goes on from there, in this
            # attempt; every request's usage is billed, so it is all counted.
            paused.append(message)
            before = before + _usage_of(message.usage)
            params["messages"] = [
                *params["messages"],
                {
                    "role": "assistant",
                    "content": [b.model_dump(exclude_none=True) for b in message.content],
                },
            ]
        log.debug(
            "anthropic %s answered in %.2fs (attempt %d, %d pauses)",
            call.model,
            time.monotonic() - started,
            attempt,
            len(paused),
        )
        response = to_response(call, message)
        if not paused:
            return response
        said = "".join(b.text for m in paused for b in m.content if b.type == "text")
        return response.model_copy(
            update={"text": said + response.text, "usage": before + response.usage}
        )

    async def _stream(
        self,
        params: dict[str, Any],
        timeout: float,
        before: TokenUsage,
        on_progress: ProgressCallback,
        on_text: TextCallback | None,
    ) -> Any:
        """One streamed request; progress reports ``before`` plus this request's usage."""

        async def reported(usage: TokenUsage) -> None:
            await on_progress(before + usage)

        try:
            async with self._client.messages.stream(**params, timeout=timeout) as stream:
                progress = _StreamUsage(reported, on_text)
                async for event in stream:
                    await progress.observe(event)
                return await stream.get_final_message()
        except anthropic.APIError as err:
            raise classify_error(err, secret=self._secret) from None

    async def count_tokens(self, call: AgentCall) -> int | None:
        """Prompt tokens from the token-count endpoint; ``None`` if it is unavailable."""
        if not self._config.count_tokens:
            return None
        params = build_request(call)
        params.pop("max_tokens")
        try:
            counted = await self._client.messages.count_tokens(
                **params, timeout=call.request_timeout_s or self._config.default_timeout_s
            )
        except anthropic.APIError as err:
            log.info(
                "token count unavailable, estimating: %s", classify_error(err, secret=self._secret)
            )
            return None
        return int(counted.input_tokens)


def build_client(config: AnthropicConfig) -> anthropic.AsyncAnthropic:
    """The SDK client every Anthropic path uses: ``max_retries=0``, Temporal owns retries."""
    return anthropic.AsyncAnthropic(
        api_key=config.api_key.get_secret_value(),
        base_url=config.base_url,
        max_retries=0,
        timeout=config.default_timeout_s,
    )


def build_request(call: AgentCall) -> dict[str, Any]:
    """Messages API parameters for ``call``, with cache breakpoints and tools.

    An agent's own tools come first, with a cache breakpoint after the last one
    (definitions repeat on every turn); a structured answer's tool follows. The
    turns so far (``call.turns``) are replayed as assistant ``tool_use`` blocks
    and user ``tool_result`` blocks, each result fenced as untrusted data.
    """
    stable, volatile = render_user_parts(call)
    # Below the model's minimum prefix the API caches nothing (and says nothing):
    # the marks cost nothing then, so they stay, and the usage tells the truth.
    cache: dict[str, str] = {"type": "ephemeral"}
    if call.prompt_cache_ttl == "1h":
        cache["ttl"] = "1h"
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                # Task and handoffs repeat across an agent's calls (revisions,
                # repairs): cache them; feedback and instructions change.
                {"type": "text", "text": stable, "cache_control": cache},
                {"type": "text", "text": volatile},
            ],
        }
    ]
    for turn in call.turns:
        messages += _turn_messages(turn, fenced=call.fenced)
    if call.turns and call.repair:
        # After tool calls the first user turn is the stored one: the repair note
        # (why the last answer was invalid) follows the last tool results.
        note = f"# Your previous answer was invalid\n{call.repair}\nAnswer again, validly."
        messages[-1]["content"].append({"type": "text", "text": note})
    params: dict[str, Any] = {
        "model": call.model,
        "max_tokens": call.max_tokens,
        "system": [{"type": "text", "text": call.system, "cache_control": cache}],
        "messages": messages,
    }
    tools = [_definition(tool) for tool in call.offered_tools]
    if tools:
        tools[-1] = {**tools[-1], "cache_control": cache}
    answer_tool = _tool_for(call)
    if answer_tool is not None:
        tools.append(answer_tool)
    if tools:
        params["tools"] = tools
        params["tool_choice"] = _tool_choice(call, answer_tool)
    return params


def _tool_choice(call: AgentCall, answer_tool: dict[str, Any] | None) -> dict[str, Any]:
    if answer_tool is not None and (call.final_turn or not call.offered_tools):
        return {"type": "tool", "name": answer_tool["name"]}
    if answer_tool is not None:
        return {"type": "any"}  # a tool, and the answer is one of them
    if call.final_turn:
        return {"type": "none"}  # the last turn: answer, no more tools
    return {"type": "auto"}


def _definition(tool: ToolDefinition) -> dict[str, Any]:
    return {
        "name": tool.model_name,
        "description": tool.description or tool.name,
        "input_schema": tool.input_schema,
    }


def _turn_messages(turn: ToolTurn, *, fenced: bool) -> list[dict[str, Any]]:
    said: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    said += [
        {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}
        for use in turn.uses
    ]
    results = [
        {
            "type": "tool_result",
            "tool_use_id": result.tool_use_id,
            "content": [
                {
                    "type": "text",
                    "text": fence(f"tool {result.tool}", result.content)
                    if fenced
                    else result.content,
                }
            ],
            "is_error": result.is_error,
        }
        for result in turn.results
    ]
    return [{"role": "assistant", "content": said}, {"role": "user", "content": results}]


def _tool_for(call: AgentCall) -> dict[str, Any] | None:
    if call.output is OutputKind.VERDICT:
        return {
            "name": VERDICT_TOOL,
            "description": "Record your verdict on the draft against the rubric.",
            "input_schema": ReviewVerdict.model_json_schema(),
        }
    if call.output is OutputKind.ROUTE:
        schema = RouteDecision.model_json_schema()
        schema["properties"]["route"]["enum"] = list(call.routes)
        direct = (
            f" Use '{DIRECT_ROUTE}' with an answer for simple requests."
            if (DIRECT_ROUTE in call.routes)
            else ""
        )
        return {
            "name": ROUTE_TOOL,
            "description": f"Route the request to one of: {', '.join(call.routes)}.{direct}",
            "input_schema": schema,
        }
    if call.output is OutputKind.JSON and call.output_schema is not None:
        return {
            "name": ANSWER_TOOL,
            "description": "Give your answer: its input is the answer, as the schema says.",
            "input_schema": call.output_schema,
        }
    return None


class _StreamUsage:
    """Usage so far while streaming.

    Prompt tokens come from ``message_start``; output tokens are estimated from
    the deltas, then exact from ``message_delta``.
    """

    def __init__(self, on_progress: ProgressCallback, on_text: TextCallback | None) -> None:
        self._on_progress = on_progress
        self._on_text = on_text
        self._usage = TokenUsage()
        self._chars = 0

    async def observe(self, event: Any) -> None:
        kind = getattr(event, "type", "")
        if kind == "message_start":
            self._usage = _usage_of(event.message.usage)
        elif kind == "content_block_delta":
            delta = event.delta
            if self._on_text is not None and getattr(delta, "type", "") == "text_delta":
                self._on_text(delta.text)
            self._chars += len(
                getattr(delta, "text", "") or getattr(delta, "partial_json", "") or ""
            )
            self._usage = self._usage.model_copy(
                update={"output_tokens": self._chars // CHARS_PER_TOKEN}
            )
        elif kind == "message_delta" and getattr(event, "usage", None) is not None:
            self._usage = self._usage.model_copy(
                update={"output_tokens": int(event.usage.output_tokens)}
            )
        else:
            return
        await self._on_progress(self._usage)


def _usage_of(usage: Any) -> TokenUsage:
    written = usage.cache_creation_input_tokens or 0
    by_ttl = getattr(usage, "cache_creation", None)
    one_hour = getattr(by_ttl, "ephemeral_1h_input_tokens", 0) or 0
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=written,
        cache_read_input_tokens=usage.cache_read_input_tokens or 0,
        # A provider that reports more 1-hour writes than writes is not believed past them.
        cache_creation_1h_input_tokens=min(one_hour, written),
    )


def to_response(call: AgentCall, message: Any) -> ModelResponse:
    """Our :class:`ModelResponse` from the SDK's final ``Message``."""
    if message.stop_reason == "model_context_window_exceeded":
        raise ContextOverflow(f"{call.model}: the prompt and output exceed the context window")
    text = "".join(block.text for block in message.content if block.type == "text")
    uses = [block for block in message.content if block.type == "tool_use"]
    data = next((dict(b.input) for b in uses if b.name in _ANSWER_TOOLS), None)
    stop = message.stop_reason if message.stop_reason in _STOP_REASONS else "end_turn"
    tool_uses = [
        ToolUse(id=b.id, name=b.name, input=dict(b.input))
        for b in uses
        if b.name not in _ANSWER_TOOLS
    ]
    if data is not None:
        tool_uses = []  # the answer came: other tools asked for with it are not run
    return ModelResponse(
        model=message.model or call.model,
        text=text,
        data=data,
        tool_uses=tool_uses,
        usage=_usage_of(message.usage),
        stop_reason=cast(StopReason, stop),
    )


def classify_error(err: anthropic.APIError, *, secret: str) -> ProviderError:
    """Turn an SDK error into our error class (see README, "What each error does")."""
    if isinstance(err, anthropic.APITimeoutError):
        return ProviderTimeout("the Messages API did not answer within the request timeout")
    if isinstance(err, anthropic.APIConnectionError):
        return ProviderConnectionError(
            _redact(f"connection to the Messages API failed: {err}", secret)
        )
    if not isinstance(err, anthropic.APIStatusError):
        return ProviderUnavailable(
            _redact(f"unexpected response from the Messages API: {err}", secret)
        )
    status, kind = err.status_code, err.type or ""
    detail = _redact(f"HTTP {status} {kind}: {err.api_message or err.message}".strip(), secret)
    retry_after = parse_retry_after(err.response.headers)
    return _status_error(status, kind, detail, retry_after, err.error_code or "")


def _status_error(
    status: int, kind: str, detail: str, retry_after: float | None, code: str
) -> ProviderError:
    # The error type in the body wins over the status: a mid-stream `error`
    # event arrives on an HTTP 200 response.
    if kind == "rate_limit_error" or status == 429:
        return RateLimited(detail, retry_after_s=retry_after)
    if kind == "overloaded_error" or status == 529:
        return ProviderOverloaded(detail, retry_after_s=retry_after)
    if kind in ("api_error", "timeout_error") or status >= 500 or status in (408, 409):
        return ProviderUnavailable(detail, retry_after_s=retry_after)
    if kind == "request_too_large" or status == 413:
        return RequestTooLarge(detail)
    if kind in ("authentication_error", "permission_error") or status in (401, 403):
        return AuthenticationFailed(detail)
    if kind == "not_found_error" or status == 404:
        return ModelNotFound(detail)
    lowered = f"{detail} {code}".lower()
    if any(marker in lowered for marker in _PROMPT_TOO_LONG):
        return ContextOverflow(detail)
    return InvalidRequest(detail)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text
