"""Client side of the tokens-per-minute limit, used inside ``call_agent``."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from activities.admission import EntityPlacement
from providers.errors import RateLimited
from teams.calls import AgentCall
from teams.prompting import estimate_prompt_tokens
from teams.token_rate import (
    TOKEN_RATE_WORKFLOW,
    AcquireRequest,
    AcquireResponse,
    TokenRateState,
    token_rate_id,
)


class TokenRateLimiter:
    """Takes a call's worst-case tokens from its model's shared minute budget."""

    def __init__(
        self, client: Client, placement: EntityPlacement, limits_per_minute: dict[str, int]
    ) -> None:
        self._client = client
        self._placement = placement
        self._limits = limits_per_minute

    def limit_for(self, model: str) -> int | None:
        """The model's tokens-per-minute limit (``*`` is the default), if any."""
        return self._limits.get(model, self._limits.get("*"))

    async def acquire(self, call: AgentCall, attempt: int) -> None:
        """Take the call's tokens, or raise ``RateLimited`` saying when to retry."""
        limit = self.limit_for(call.model)
        if limit is None:
            return
        tokens = estimate_prompt_tokens(call) + call.max_tokens
        request = AcquireRequest(
            request_id=f"{call.call_id}#{attempt}",
            tokens=min(tokens, limit),
            limit_per_minute=limit,
        )
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            TOKEN_RATE_WORKFLOW,
            TokenRateState(model=call.model),
            id=f"{self._placement.prefix}{token_rate_id(call.model)}",
            task_queue=self._placement.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        answer: AcquireResponse = await self._client.execute_update_with_start_workflow(
            "acquire", request, start_workflow_operation=start, result_type=AcquireResponse
        )
        if not answer.granted:
            raise RateLimited(
                f"tokens-per-minute limit for {call.model} ({limit}/min) reached: "
                f"{answer.used} used in the last minute",
                retry_after_s=answer.retry_after_s,
            )
