"""``TokenRateWorkflow``: a sliding one-minute token budget for one model.

Shared by every worker (update-with-start on ``tpm/<model>``), so a fleet stays
inside the account's tokens-per-minute limit however many workers run. Grants
are idempotent by request id. State is the last minute of grants only.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from teams.token_rate import (
        TOKEN_RATE_WORKFLOW,
        WINDOW_SECONDS,
        AcquireRequest,
        AcquireResponse,
        Grant,
        TokenRateState,
    )

UPDATES_PER_RUN = 1_000
IDLE_CLOSE = timedelta(days=1)


@workflow.defn(name=TOKEN_RATE_WORKFLOW)
class TokenRateWorkflow:
    """Tokens-per-minute limiter (see module docstring)."""

    @workflow.init
    def __init__(self, state: TokenRateState) -> None:
        self._model = state.model
        self._grants = list(state.grants)
        self._updates = 0

    @workflow.run
    async def run(self, state: TokenRateState) -> None:
        """Serve ``acquire``; continue-as-new to stay small; end when idle for a day."""
        while True:
            seen = self._updates
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._updates >= UPDATES_PER_RUN
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=IDLE_CLOSE,
                    timeout_summary="idle limiter",
                )
            except TimeoutError:
                if self._updates == seen:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    return
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(TokenRateState(model=self._model, grants=self._grants))

    @workflow.update(name="acquire")
    def acquire(self, request: AcquireRequest) -> AcquireResponse:
        """Grant ``tokens`` if the last minute leaves room, else say when to retry."""
        self._updates += 1
        now = workflow.now()
        window = timedelta(seconds=WINDOW_SECONDS)
        self._grants = [g for g in self._grants if now - g.at < window]
        used = sum(g.tokens for g in self._grants)
        if any(g.request_id == request.request_id for g in self._grants):
            return AcquireResponse(granted=True, used=used)
        if used + request.tokens > request.limit_per_minute and self._grants:
            # Wait until enough of the oldest grants leave the window.
            freed, wait = 0, 0.0
            for grant in self._grants:
                freed += grant.tokens
                wait = (grant.at + window - now).total_seconds()
                if used - freed + request.tokens <= request.limit_per_minute:
                    break
            return AcquireResponse(granted=False, used=used, retry_after_s=max(wait, 0.1))
        self._grants.append(Grant(request_id=request.request_id, tokens=request.tokens, at=now))
        return AcquireResponse(granted=True, used=used + request.tokens)
