"""Build the :class:`AgentCallRecord` of a call, whatever its outcome (pure)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.admission import SettlementReceipt
    from contracts.calls import AgentCall, AgentOutcome
    from contracts.results import AgentCallRecord, CallStatus
    from money.pricing import TokenUsage
    from workflows.calls.failures import CallFailure


def base_record(
    call: AgentCall, status: CallStatus, reserved: int, usage: TokenUsage, elapsed_ms: int
) -> AgentCallRecord:
    """The fields every call record has."""
    return AgentCallRecord(
        call_id=call.call_id,
        stage=call.stage,
        agent=call.agent,
        model=call.model,
        prompt_version=call.prompt.label,
        iteration=call.iteration,
        fallback_for=call.fallback_for,
        fallback_reason=call.fallback_reason,
        routing=call.routing,
        variant=call.variant,
        status=status,
        reserved_micro=reserved,
        elapsed_ms=elapsed_ms,
        usage=usage,
    )


def answered(
    call: AgentCall, outcome: AgentOutcome, reserved: int, elapsed_ms: int
) -> AgentCallRecord:
    """A call that answered (or was cancelled mid-stream: ``outcome.cancelled``)."""
    status = CallStatus.CANCELLED if outcome.cancelled else CallStatus.SUCCEEDED
    usage = outcome.earlier_attempts_usage + outcome.usage
    trims = outcome.context.trimmed if outcome.context else []
    return base_record(call, status, reserved, usage, elapsed_ms).model_copy(
        update={
            "model": outcome.model,
            "provider": outcome.provider,
            "prompt_version": outcome.prompt.label,
            "attempts": outcome.attempt,
            "billed_attempts": outcome.billed_attempts or None,
            "cost_micro": outcome.cost_micro,
            "latency_ms": None if outcome.cancelled else outcome.latency_ms,
            "quality_score": outcome.verdict.score if outcome.verdict else None,
            "stop_reason": None if outcome.cancelled else outcome.stop_reason,
            "truncated": outcome.truncated,
            "context_trimmed": [f"{trim.source}: {trim.action}" for trim in trims],
            "error_type": "Cancelled" if outcome.cancelled else None,
            "error": "stopped by the stage timeout" if outcome.cancelled else None,
            "cache_hit": outcome.cache_hit,
            "saved_micro": outcome.saved_micro,
            "semantic": outcome.semantic,
            "injection_rules": sorted({finding.rule for finding in outcome.injection}),
            "pii_redacted": outcome.pii_redacted,
        }
    )


def failed(
    call: AgentCall, failure: CallFailure, reserved: int, elapsed_ms: int
) -> AgentCallRecord:
    """A call that ended without an answer."""
    return base_record(call, failure.status, reserved, failure.usage, elapsed_ms).model_copy(
        update={
            "attempts": failure.attempts,
            "billed_attempts": failure.billed_attempts,
            "cost_micro": failure.cost_micro,
            "error_type": failure.error_type,
            "error": failure.message,
        }
    )


def skipped(call: AgentCall, reserved: int, status: CallStatus, reason: str) -> AgentCallRecord:
    """A call never made: a budget or a circuit breaker refused it."""
    error_type = "CircuitOpen" if status is CallStatus.SKIPPED_CIRCUIT else "BudgetExceeded"
    return base_record(call, status, reserved, TokenUsage(), 0).model_copy(
        update={"attempts": 0, "error_type": error_type, "error": reason}
    )


def with_receipt(record: AgentCallRecord, receipt: SettlementReceipt) -> AgentCallRecord:
    """``record`` at what the store charged for the call, if that is more (or better known).

    Receipts from before per-attempt charging carry no usage: their runs take
    the total only when it is larger, as they did.
    """
    if receipt.usage is None:
        if receipt.total_micro <= record.cost_micro:
            return record
        return record.model_copy(update={"cost_micro": receipt.total_micro})
    return record.model_copy(
        update={
            "cost_micro": max(receipt.total_micro, record.cost_micro),
            "usage": receipt.usage,
            "billed_attempts": receipt.billed_attempts or record.billed_attempts,
        }
    )
