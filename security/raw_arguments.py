"""Workflow arguments stay raw payloads, however many arrive: the workers' payload converter.

The SDK converts a handler's payloads with its type hints only when their
number matches, and a handler that takes ``*args`` has no hints at all: its
payloads would be decoded as plain JSON, and one the converter cannot read (an
unknown encoding, the marker a worker's codec leaves where a payload did not
decrypt) would raise before workflow code runs. For the run's input that fails
the workflow task on every retry: the run hangs in Running.

So in a workflow, a payload converted *without* a type hint stays a
:class:`~temporalio.common.RawValue`, and the workflow converts it itself
(:mod:`workflows.inputs`), where every problem becomes a typed answer. Every
other conversion (activity inputs and results, anything with a type hint) is
pydantic's, written without defaults (:mod:`security.compact_payloads`); failures
(messages, details, heartbeat details), which the SDK decodes without hints, are
decoded as JSON values through :class:`TypedFailures`. What stays raw in workflow
code besides handler arguments: ``workflow.memo_value()`` and
``workflow.payload_converter()`` without a type hint (the workflows here use neither).

Workers and replayers use this converter (:func:`security.codec.data_converter`
with ``lenient``; ``worker.plugin.AgentTeamsPlugin`` sees to it whatever client it
is given), so both see the same values; clients keep their own (the project's
clients: :data:`~security.compact_payloads.compact_data_converter`, keyed or not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.common import RawValue
from temporalio.converter import (
    DefaultFailureConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadConverter,
    SerializationContext,
    WorkflowSerializationContext,
)

from security.compact_payloads import CompactPayloadConverter


class WorkflowArgumentsConverter(CompactPayloadConverter):
    """The project's pydantic converter, with untyped values kept raw in workflow code."""

    def with_context(self, context: SerializationContext) -> Any:
        """In a workflow's own context, untyped payloads convert to ``RawValue``.

        Only the workflow's context (:class:`WorkflowSerializationContext`
        itself, not the activity context): activity results and failures
        convert as pydantic does.
        """
        converter = super().with_context(context)
        if type(context) is WorkflowSerializationContext:
            return RawWhenUntyped(converter)
        return converter


class RawWhenUntyped(PayloadConverter):
    """Delegates to ``inner``, except that a conversion without type hints returns ``RawValue``."""

    def __init__(self, inner: PayloadConverter) -> None:
        self._inner = inner

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        """As ``inner``."""
        return self._inner.to_payloads(values)

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        """Raw values when untyped (they cannot fail); otherwise as ``inner``."""
        if type_hints is None:
            return [RawValue(payload) for payload in payloads]
        return self._inner.from_payloads(payloads, type_hints)


class AnyWhenUntyped(PayloadConverter):
    """Delegates to ``inner``, giving an untyped conversion the hint ``Any`` (plain JSON values)."""

    def __init__(self, inner: PayloadConverter) -> None:
        self._inner = inner

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        """As ``inner``."""
        return self._inner.to_payloads(values)

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        """As ``inner``, with ``Any`` for every payload when no hints are given."""
        hints: list[Any] = list(type_hints) if type_hints is not None else [Any] * len(payloads)
        return self._inner.from_payloads(payloads, hints)


class TypedFailures(DefaultFailureConverter):
    """Failures decoded as pydantic decodes them, even by :class:`RawWhenUntyped`."""

    def from_failure(self, failure: Failure, payload_converter: PayloadConverter) -> BaseException:
        """As the default converter, with its untyped conversions typed ``Any``."""
        return super().from_failure(failure, AnyWhenUntyped(payload_converter))


class TypedEncodedFailures(DefaultFailureConverterWithEncodedAttributes):
    """:class:`TypedFailures` for failures whose message and stack trace are encoded."""

    def from_failure(self, failure: Failure, payload_converter: PayloadConverter) -> BaseException:
        """As the encoded-attributes converter, with its untyped conversions typed ``Any``."""
        return super().from_failure(failure, AnyWhenUntyped(payload_converter))
