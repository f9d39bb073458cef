"""Raw payloads in, contracts out: the run's input, signals and updates, never a wedge.

The workflow's entry points take any number of :class:`~temporalio.common.RawValue`
(``*args``) and convert here, because the SDK converts typed arguments *before*
workflow code runs: a value its converter cannot handle (an ``OverflowError``, a
payload the worker's codec could not decrypt, ...) or a number of payloads the
handler does not take (``temporal workflow signal`` without ``--input``) would
fail the workflow task on every retry, and the run would hang in Running with no
error a user can see. Here every failure, a wrong count included, becomes a
typed answer instead:

- the input: the run fails at once with ``InvalidRequest``, each problem named
  by its field (``team.agents.0.timeouts.start_to_close: ...``);
- a signal: recorded as an ignored decision, with the reason;
- the ``decide`` update: its validator refuses it (``InvalidDecision``), so it
  never enters history.

The JSON callers send is unchanged (``temporal workflow start --input``,
``temporal workflow signal --input`` keep working).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from contracts.approvals import DecideRequest
    from contracts.requests import TeamRequest, describe_validation_error
    from security.codec import UNDECRYPTABLE, UNDECRYPTABLE_REASON, arrived_plaintext
    from workflows import evaluator

INVALID_REQUEST = "InvalidRequest"
"""Failure type of a run whose input is not a valid :class:`TeamRequest`."""
INVALID_DECISION = "InvalidDecision"
"""Failure type of a ``decide`` update whose payload is not a valid request."""

_Model = TypeVar("_Model", bound=BaseModel)


class UnreadablePayload(Exception):
    """A payload that is not a valid contract; ``problems`` says why, field by field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def single(args: Sequence[object], model: type[BaseModel]) -> object:
    """The one argument of a handler that takes one ``model``, or :class:`UnreadablePayload`."""
    if len(args) != 1:
        raise UnreadablePayload(
            [f"(payloads): expected 1 payload (a {model.__name__}), got {len(args)}"]
        )
    return args[0]


def plaintext(args: Sequence[object]) -> bool:
    """Whether the handler's payload arrived unencrypted at a worker that encrypts."""
    return any(isinstance(a, RawValue) and arrived_plaintext(a.payload) for a in args)


def convert(raw: object, model: type[_Model]) -> _Model:
    """``raw`` as ``model``, or :class:`UnreadablePayload` naming every problem.

    ``raw`` is a ``RawValue`` on the project's workers; a value already decoded
    (a worker built with another data converter) is validated as it is.
    """
    if isinstance(raw, RawValue):
        payload = raw.payload
    else:
        # Back to JSON, so the value is read exactly as its payload would be
        # (same coercions, same messages).
        try:
            payload = workflow.payload_converter().to_payload(raw)
        except Exception as err:  # decoded from a payload, so it re-encodes; guard anyway
            raise UnreadablePayload([f"(payload): {type(err).__name__}: {err}"]) from None
    if payload.metadata.get("encoding") == UNDECRYPTABLE:
        reason = payload.metadata.get(UNDECRYPTABLE_REASON, b"").decode("utf-8", "replace")
        raise UnreadablePayload([f"(payload): {reason}"])
    try:
        value = workflow.payload_converter().from_payload(payload, model)
    except ValidationError as err:
        raise UnreadablePayload(describe_validation_error(err)) from None
    except Exception as err:  # any converter failure is the payload's problem, not the run's
        raise UnreadablePayload([f"(payload): {type(err).__name__}: {err}"]) from None
    if not isinstance(value, model):  # a converter that ignored the type hint
        raise UnreadablePayload([f"(payload): not a {model.__name__}"])
    return value


def team_request(args: Sequence[object]) -> TeamRequest:
    """The run's input, or a non-retryable ``InvalidRequest`` failure naming the fields.

    Evaluator approvals are refused here too, unless this is a child run
    (:mod:`workflows.evaluator`).
    """
    request = _required(args, TeamRequest, "invalid team request", INVALID_REQUEST)
    refused = evaluator.refusal(request)
    if refused is not None:
        raise ApplicationError(
            f"invalid team request: {refused}", type=INVALID_REQUEST, non_retryable=True
        )
    return request


def decide_request(args: Sequence[object]) -> DecideRequest:
    """The ``decide`` update's payload, or an ``InvalidDecision`` refusal naming the fields."""
    return _required(args, DecideRequest, "invalid decision", INVALID_DECISION)


def one(args: Sequence[object], model: type[_Model]) -> _Model:
    """The single argument as ``model``, or :class:`UnreadablePayload` (a wrong count too)."""
    return convert(single(args, model), model)


def _required(args: Sequence[object], model: type[_Model], what: str, error_type: str) -> _Model:
    """The single argument as ``model``, or a non-retryable ``error_type`` ApplicationError."""
    try:
        return one(args, model)
    except UnreadablePayload as err:
        raise ApplicationError(
            f"{what}: " + "; ".join(err.problems), type=error_type, non_retryable=True
        ) from None
