"""Start one ``call_agent`` activity and wait for it, stopping it when asked.

The workflow side of an agent call's activity: timeouts and retry policy from
the agent's spec, the readable activity id and summary the UI shows, and
cooperative cancellation: when a fan-out stage times out or the run is
cancelled, the call is asked to stop and its answer, which carries the partial
usage, is awaited, so nothing is left running unbilled.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType, ActivityHandle

with workflow.unsafe.imports_passed_through():
    from contracts.activities import call_agent
    from contracts.calls import AgentCall, AgentOutcome
    from contracts.provider_errors import CONTROL_REFUSALS, NON_RETRYABLE_ERROR_TYPES
    from teams.spec.team import AgentSpec


class StopFlag:
    """Set when a stage's time is up: calls in flight are asked to stop, no new one starts."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Ask every call watching this flag to stop."""
        self._set = True

    def is_set(self) -> bool:
        """Whether the stage has asked its calls to stop."""
        return self._set


def start_call(
    call: AgentCall, spec: AgentSpec, *, task_queue: str | None
) -> ActivityHandle[AgentOutcome]:
    """Schedule ``call_agent`` for ``call`` with the agent's timeouts and retry policy."""
    return workflow.start_activity(
        call_agent,
        call,
        task_queue=task_queue,
        # Readable ids in the UI: "<stage>/<agent>/<n>".
        activity_id=call.call_id.removeprefix(f"{workflow.info().workflow_id}/"),
        summary=f"{call.agent} · {call.model}",
        start_to_close_timeout=spec.timeouts.start_to_close,
        schedule_to_close_timeout=spec.timeouts.schedule_to_close,
        heartbeat_timeout=spec.timeouts.heartbeat,
        retry_policy=retry_policy(spec),
        # Its answer to a cancellation carries the partial usage, to be charged.
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )


async def outcome_of(handle: ActivityHandle[AgentOutcome], stop: StopFlag | None) -> AgentOutcome:
    """Await the call, asking it to stop if the stage's time runs out first."""
    if stop is not None:
        await workflow.wait_condition(lambda: handle.done() or stop.is_set())
        if not handle.done():
            handle.cancel()
    return await handle


def retry_policy(spec: AgentSpec) -> RetryPolicy:
    """The agent's retry policy; errors no retry can fix are never retried."""
    return RetryPolicy(
        initial_interval=spec.retry.initial_interval,
        backoff_coefficient=spec.retry.backoff_coefficient,
        maximum_interval=spec.retry.maximum_interval,
        maximum_attempts=spec.retry.maximum_attempts,
        non_retryable_error_types=[*NON_RETRYABLE_ERROR_TYPES, *CONTROL_REFUSALS],
    )
