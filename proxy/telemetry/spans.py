"""Spans: what a request's trace is made of, recorded for a few microseconds each.

Tollhouse records its two spans per request (the server span and one client span per
upstream attempt) with these small slotted objects instead of the OpenTelemetry SDK's:
a span is a name, ids, two timestamps, an attribute dict and a status, handed to a sink
(the batch exporter) when it ends. The SDK's general machinery (span processors, limits,
locks, attribute validation) cost about 55 µs per span here, most of the proxy's whole
budget for tracing; this costs about 2 µs (docs/observability.md, "What tracing costs").

Trace context follows W3C Trace Context (``traceparent``/``tracestate``); sampling
follows the OpenTelemetry sampler names (``parentbased_always_on`` by default).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from governance.config.telemetry import SamplerName

AttributeValue = str | bool | int | float | list[str] | list[int] | list[float] | list[bool]

# OTLP's enum values (opentelemetry/proto/trace/v1/trace.proto).
INTERNAL, SERVER, CLIENT = 1, 2, 3
UNSET, OK, ERROR = 0, 1, 2

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True, slots=True)
class SpanContext:
    """The part of a span that crosses process boundaries."""

    trace_id: int
    span_id: int
    sampled: bool
    tracestate: str | None = None

    def traceparent(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate`` when the caller sent one) for a request."""
        headers = {"traceparent": self.traceparent()}
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers


def parse_traceparent(traceparent: str, tracestate: str | None = None) -> SpanContext | None:
    """The caller's span context, or None for a missing or malformed header (the
    request then starts a new trace, as the W3C specification says)."""
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, bool(int(flags, 16) & 1), tracestate or None)


class Span:
    """One operation: created by `Tracer.start_span`, exported once `end` is called.

    A span that is not sampled records nothing and exports nothing, but keeps its ids so
    that the trace context still reaches upstreams (with the sampled flag off).
    """

    __slots__ = (
        "_sink",
        "attributes",
        "end_ns",
        "kind",
        "name",
        "parent_id",
        "sampled",
        "span_id",
        "start_ns",
        "status",
        "status_message",
        "trace_id",
        "tracestate",
    )

    def __init__(
        self,
        name: str,
        kind: int,
        trace_id: int,
        span_id: int,
        parent_id: int | None,
        sampled: bool,
        tracestate: str | None,
        attributes: dict[str, Any],
        sink: Callable[[Span], None] | None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.sampled = sampled
        self.tracestate = tracestate
        self.attributes = attributes
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.status = UNSET
        self.status_message = ""
        self._sink = sink if sampled else None

    @property
    def recording(self) -> bool:
        return self._sink is not None

    @property
    def context(self) -> SpanContext:
        return SpanContext(self.trace_id, self.span_id, self.sampled, self.tracestate)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.attributes.update(attributes)

    def update_name(self, name: str) -> None:
        self.name = name

    def set_status(self, code: int, message: str = "") -> None:
        """``ERROR`` with a description, or ``OK``; a description only goes with ERROR."""
        self.status = code
        self.status_message = message if code == ERROR else ""

    def end(self, end_ns: int | None = None) -> None:
        """Finish the span (at ``end_ns``, else now) and hand it to the exporter; a
        second call does nothing."""
        if self.end_ns:
            return
        self.end_ns = end_ns or time.time_ns()
        sink = self._sink
        if sink is not None:
            self._sink = None
            sink(self)


class Sampler:
    """Decides, when a span starts, whether its trace is recorded.

    The ``parentbased_*`` samplers follow the caller's sampled flag when a request
    continues a trace and apply their root rule otherwise; ``traceidratio`` keeps a trace
    when its id's low 64 bits fall below ``ratio`` of the range, so every service with the
    same ratio keeps the same traces.
    """

    def __init__(self, name: SamplerName = "parentbased_always_on", ratio: float = 1.0) -> None:
        self.name = name
        self.ratio = min(1.0, max(0.0, ratio))
        self._bound = round(self.ratio * 2**64)
        self._parent_based = name.startswith("parentbased_")
        self._root = name.removeprefix("parentbased_")

    def sampled(self, trace_id: int, parent: SpanContext | None) -> bool:
        if parent is not None and self._parent_based:
            return parent.sampled
        if self._root == "always_on":
            return True
        if self._root == "always_off":
            return False
        return (trace_id & 0xFFFF_FFFF_FFFF_FFFF) < self._bound


class Tracer:
    """Starts spans; ``sink`` receives each sampled span when it ends (None: tracing off,
    spans still carry ids for propagation but are never sampled)."""

    def __init__(
        self,
        sink: Callable[[Span], None] | None = None,
        sampler: Sampler | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._sink = sink
        self._sampler = sampler or Sampler()
        self._bits = (rng or random.Random()).getrandbits  # seeded from os.urandom

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def start_span(
        self,
        name: str,
        kind: int,
        parent: SpanContext | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        """A span under ``parent`` (a remote caller's or one of ours), or a new trace's root."""
        if parent is None:
            trace_id = self._bits(128) or 1
            tracestate = None
        else:
            trace_id = parent.trace_id
            tracestate = parent.tracestate
        sink = self._sink
        sampled = sink is not None and self._sampler.sampled(trace_id, parent)
        if sink is None and parent is not None:
            sampled = parent.sampled  # not ours to record, but the caller's flag travels on
        return Span(
            name,
            kind,
            trace_id,
            self._bits(64) or 1,
            None if parent is None else parent.span_id,
            sampled,
            tracestate,
            attributes if attributes is not None else {},
            sink,
        )
