"""Getting spans and metrics out of the process, off the request path.

A request only appends its ended spans to `SpanBatcher`'s bounded queue. The batcher's
task, on the same event loop, scrubs each batch (the last check before a span leaves
the process), encodes it and hands it to a `Writer`: OTLP over HTTP or gRPC, or JSON
lines on standard output. `MetricPusher` collects the meter on an interval and writes
the same way. Nothing here runs on another thread, so nothing competes with the event
loop for the interpreter lock; a full queue drops spans (counted, and logged at most
once a minute) rather than growing or slowing requests down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, TextIO

import orjson

from governance.observability.scrub import Scrubber
from proxy.telemetry import semconv as sc
from proxy.telemetry.metrics import Meter, MetricData
from proxy.telemetry.otlp import Encoder
from proxy.telemetry.spans import Span

log = logging.getLogger("tollhouse.telemetry")

_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT"}
_STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}


class ExportError(Exception):
    """An export that did not arrive; ``retryable`` when trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Transport(Protocol):
    """Carries encoded OTLP export requests to a collector."""

    async def send(self, signal: str, payload: bytes) -> None:
        """``signal``: ``traces`` or ``metrics``; raises `ExportError`."""
        ...

    async def close(self) -> None: ...


class Writer(Protocol):
    async def spans(self, spans: Sequence[Span]) -> None: ...

    async def metrics(self, data: Sequence[MetricData], start_ns: int, now_ns: int) -> None: ...

    async def close(self) -> None: ...


class OtlpWriter:
    """Encodes with `Encoder` and sends through a `Transport`, retrying what may pass
    later (a collector restarting, answering 429 or 503) a few times with back-off."""

    def __init__(
        self,
        encoder: Encoder,
        transport: Transport,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        chunk: int = 64,
    ) -> None:
        self._encoder = encoder
        self._transport = transport
        self._retries = retries
        self._backoff_s = backoff_s
        self._chunk = chunk

    async def spans(self, spans: Sequence[Span]) -> None:
        parts = []
        for start in range(0, len(spans), self._chunk):
            parts.append(self._encoder.spans(spans[start : start + self._chunk]))
            await asyncio.sleep(0)  # let requests run between chunks
        await self._send("traces", b"".join(parts))  # repeated resource_spans

    async def metrics(self, data: Sequence[MetricData], start_ns: int, now_ns: int) -> None:
        if data:
            await self._send("metrics", self._encoder.metrics(data, start_ns, now_ns))

    async def _send(self, signal: str, payload: bytes) -> None:
        for attempt in range(self._retries + 1):
            try:
                await self._transport.send(signal, payload)
                return
            except ExportError as error:
                if not error.retryable or attempt == self._retries:
                    raise
                await asyncio.sleep(self._backoff_s * 2**attempt)

    async def close(self) -> None:
        await self._transport.close()


class ConsoleWriter:
    """One JSON object per span or metric point on standard output (debugging)."""

    def __init__(self, resource: dict[str, Any], stream: TextIO | None = None) -> None:
        self._resource = resource
        self._stream = stream or sys.stdout

    async def spans(self, spans: Sequence[Span]) -> None:
        for span in spans:
            self._write(
                {
                    "name": span.name,
                    "kind": _KINDS.get(span.kind, "UNSPECIFIED"),
                    "trace_id": f"{span.trace_id:032x}",
                    "span_id": f"{span.span_id:016x}",
                    "parent_span_id": None if span.parent_id is None else f"{span.parent_id:016x}",
                    "start_ns": span.start_ns,
                    "end_ns": span.end_ns,
                    "status": _STATUSES.get(span.status, "UNSET"),
                    "status_message": span.status_message,
                    "attributes": span.attributes,
                    "resource": self._resource,
                }
            )

    async def metrics(self, data: Sequence[MetricData], start_ns: int, now_ns: int) -> None:
        for metric in data:
            for point in metric.points:
                record: dict[str, Any] = {
                    "metric": metric.name,
                    "unit": metric.unit,
                    "kind": metric.kind,
                    "attributes": dict(point.labels),
                    "value": point.value,
                    "time_ns": now_ns,
                }
                if metric.kind == "histogram":
                    record.update(count=point.count, buckets=list(point.counts))
                self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        self._stream.write(orjson.dumps(record, default=str).decode() + "\n")
        self._stream.flush()

    async def close(self) -> None:
        pass


class SpanScrubber:
    """Scrubs, in place, every string attribute Tollhouse does not know to be safe and
    the status description (an upstream's error message may quote a prompt). Results for
    recurring strings (URL paths, model names) are kept, up to ``limit`` of them."""

    def __init__(self, scrubber: Scrubber, limit: int = 2048) -> None:
        self._scrubber = scrubber
        self._clean: dict[str, str] = {}
        self._limit = limit

    def __call__(self, span: Span) -> None:
        attributes = span.attributes
        for key, value in attributes.items():
            if key in sc.SAFE_ATTRIBUTES:
                continue
            if isinstance(value, str):
                clean = self._text(value)
                if clean is not value:
                    attributes[key] = clean
            elif isinstance(value, list | tuple):
                attributes[key] = [self._text(v) if isinstance(v, str) else v for v in value]
        if span.status_message:
            span.status_message = self._scrubber.scrub(span.status_message)

    def _text(self, value: str) -> str:
        clean = self._clean.get(value)
        if clean is None:
            clean = self._scrubber.scrub(value)
            if len(value) <= 256:
                if len(self._clean) >= self._limit:
                    self._clean.clear()
                self._clean[value] = clean
        return value if clean == value else clean


class SpanBatcher:
    """The sink of the tracer: a bounded queue drained in batches by a task."""

    def __init__(
        self,
        writer: Writer,
        scrubber: Scrubber,
        *,
        max_queue: int = 8192,
        batch: int = 512,
        delay_s: float = 1.0,
    ) -> None:
        self._writer = writer
        self._scrub = SpanScrubber(scrubber)
        self._queue: deque[Span] = deque()
        self._max_queue = max_queue
        self._batch = batch
        self._delay_s = delay_s
        self._task: asyncio.Task[None] | None = None
        self._early: asyncio.Task[None] | None = None
        self._exporting = asyncio.Lock()
        self.dropped = 0
        self.exported = 0
        self._warned = 0.0

    def enqueue(self, span: Span) -> None:
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.dropped += 1
            self._warn(f"span queue full ({self._max_queue}); {self.dropped} spans dropped")
            return
        queue.append(span)
        if len(queue) >= self._batch and self._early is None and self._task is not None:
            # A full batch goes out now rather than at the next tick.
            self._early = asyncio.get_running_loop().create_task(self._flush_early())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="span-export")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._delay_s)
            await asyncio.shield(self.flush())  # closing waits for it instead

    async def _flush_early(self) -> None:
        try:
            await self.flush(full_only=True)
        finally:
            self._early = None

    async def flush(self, *, full_only: bool = False) -> None:
        """Export what is queued, in batches, after any export under way; ``full_only``
        leaves a last partial batch for the next tick (fewer, fuller requests)."""
        async with self._exporting:
            while self._queue and (not full_only or len(self._queue) >= self._batch):
                count = min(self._batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(count)]
                for span in batch:
                    self._scrub(span)
                try:
                    await self._writer.spans(batch)
                    self.exported += count
                except ExportError as error:
                    self.dropped += count
                    self._warn(f"spans not exported: {error}; {self.dropped} spans dropped")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()  # after any export under way (the lock)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned >= 60:
            self._warned = now
            log.warning(message)


class MetricPusher:
    """Collects the meter every ``interval_s`` and writes it (and once more at close)."""

    def __init__(self, meter: Meter, writer: Writer, interval_s: float) -> None:
        self._meter = meter
        self._writer = writer
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metric-export")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()

    async def flush(self) -> None:
        try:
            await self._writer.metrics(self._meter.collect(), self._meter.start_ns, time.time_ns())
        except ExportError as error:
            log.warning("metrics not exported: %s", error)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
