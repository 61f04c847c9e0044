"""The last check before a span leaves the process: scrub what might hold a secret.

Span attributes are set from configuration, fixed vocabularies, counts and identifiers;
the few that carry text a client or an upstream wrote (the URL path, captured content
after redaction, error messages in status descriptions and events) go through the
`Scrubber` here, on the batch processor's thread, so the request path never pays for it.
Attributes Tollhouse does not know are scrubbed too: only the known-safe keys are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from governance.observability.scrub import Scrubber
from proxy.telemetry import semconv as sc


class ScrubbingSpanExporter(SpanExporter):
    """Wraps an exporter; spans whose strings change are re-built with scrubbed values."""

    def __init__(self, inner: SpanExporter, scrubber: Scrubber) -> None:
        self._inner = inner
        self._scrubber = scrubber

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def _scrubbed(self, span: ReadableSpan) -> ReadableSpan:
        attributes = self._attributes(span.attributes)
        events = [self._event(event) for event in span.events]
        status = span.status
        description = status.description
        clean = self._scrubber.scrub(description) if description else description
        changed = (
            attributes is not None
            or any(new is not old for new, old in zip(events, span.events, strict=True))
            or clean != description
        )
        if not changed:
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes if attributes is not None else span.attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=Status(status.status_code, clean) if clean != description else status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _event(self, event: Event) -> Event:
        attributes = self._attributes(event.attributes)
        if attributes is None:
            return event
        return Event(event.name, attributes, event.timestamp)

    def _attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Scrubbed attributes, or None when nothing needed scrubbing."""
        if not attributes:
            return None
        out: dict[str, Any] | None = None
        for key, value in attributes.items():
            if key in sc.SAFE_ATTRIBUTES or not isinstance(value, str | tuple | list):
                continue
            clean = self._scrubber.scrub_value(value)
            if clean != value:
                if out is None:
                    out = dict(attributes)
                out[key] = clean
        return out
