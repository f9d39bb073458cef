"""Spans leave the worker without PII: an exporter wrapper that redacts their text.

The project's own span attributes carry names, counts and costs only
(:mod:`activities.call_spans`), but spans also carry text the project does not
write: the exception events and status descriptions the Temporal tracing
interceptor records when an activity or workflow fails, whose messages may
quote an input. Every string on a span (attributes, event attributes, link
attributes, the status description) goes through :func:`security.pii.redaction.redact`
before the wrapped exporter sends it anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import Attributes, AttributeValue

from security.pii.redaction import redact


class RedactingSpanExporter(SpanExporter):
    """Redacts every span's text, then hands the spans to ``inner``."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export redacted copies of ``spans``."""
        return self._inner.export([redacted_span(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the wrapped exporter."""
        return self._inner.force_flush(timeout_millis)


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` with PII replaced in every string it carries."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description))
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_attributes(span.attributes),
        events=[
            Event(event.name, _attributes(event.attributes), event.timestamp)
            for event in span.events
        ],
        links=[Link(link.context, _attributes(link.attributes)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _attributes(attributes: Attributes) -> dict[str, AttributeValue]:
    return {key: _value(value) for key, value in (attributes or {}).items()}


def _value(value: AttributeValue) -> AttributeValue:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple | list) and value and isinstance(value[0], str):
        return tuple(redact(str(item)) for item in value)
    return value
