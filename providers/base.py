"""The one interface every model provider implements.

A provider turns an :class:`contracts.calls.AgentCall` into a
:class:`ModelResponse`, streaming progress (output tokens so far) to a callback
so the activity can heartbeat. It raises only :mod:`contracts.provider_errors` types and
never retries: Temporal owns retries.

Providers are built by the worker from its settings and passed into the
activities; nothing is constructed at import time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from contracts.calls import AgentCall, StopReason
from contracts.tools import ToolUse
from money.pricing import TokenUsage

ProgressCallback = Callable[[TokenUsage], Awaitable[None]]
"""Called as the call streams, with the usage so far: prompt tokens once the
provider has accepted the request, output tokens as they arrive. The activity
heartbeats it, so an interrupted attempt's tokens are known to the next one."""


TextCallback = Callable[[str], None]
"""Called with each piece of answer text as the model streams it (never blocks: the
activity batches it to the run's live stream). Only ``text`` blocks stream; a
structured answer (a tool's JSON input) arrives whole, in the response."""


class ModelResponse(BaseModel):
    """A provider's raw answer: text and/or structured data, usage, stop reason."""

    model_config = ConfigDict(frozen=True)

    model: str
    text: str = ""
    data: dict[str, Any] | None = None
    """Structured output as returned (tool input / JSON), validated by the activity."""
    tool_uses: list[ToolUse] = []
    """The agent's own tools the model asked to call (stop reason ``tool_use``)."""
    usage: TokenUsage
    stop_reason: StopReason


class ModelProvider(Protocol):
    """A source of model completions (``simulated``, ``anthropic``)."""

    @property
    def name(self) -> str:
        """Stable provider name, recorded with every call."""
        ...

    async def generate(
        self,
        call: AgentCall,
        *,
        attempt: int,
        on_progress: ProgressCallback,
        on_text: TextCallback | None = None,
    ) -> ModelResponse:
        """Make one model call. ``attempt`` is Temporal's attempt number (from 1)."""
        ...

    async def count_tokens(self, call: AgentCall) -> int | None:
        """Prompt tokens ``call`` would use, or ``None`` when the provider cannot count."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the worker stops."""
        ...
