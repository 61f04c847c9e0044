"""Relaying a streamed answer chunk by chunk.

Nothing is held back: each upstream event is forwarded as soon as it is parsed. The
relay only watches what passes (usage, ids, finish reasons, optionally content) and
drops the final usage-only chunk for clients that did not ask for usage (Tollhouse
always asks upstream, so spend is exact). Once the first byte has gone out, errors
travel in-stream as an ``error`` event followed by ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from governance.audit import Completion, RecordKind
from governance.errors import (
    AuditUnavailableError,
    TollhouseError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from proxy.asgi import Emit
from proxy.calls import Call, Endpoint
from proxy.errors import error_payload
from proxy.routing import Lease, Router, Target
from proxy.telemetry.request import traced
from proxy.upstream.adapter import EventStream
from proxy.usage import StreamObserver, Usage

if TYPE_CHECKING:
    from proxy.pipeline import Pipeline

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class _Opened:
    stream: EventStream
    events: AsyncIterator[bytes]
    first: bytes | None

    @property
    def watched_headers(self) -> dict[str, str]:
        return self.stream.watched_headers


async def open_stream(pipeline: Pipeline, router: Router, call: Call, path: str) -> StreamRelay:
    """Connect upstream and read the first event, retrying/falling back until one works."""
    assert call.model is not None and call.body is not None
    options = call.body.get("stream_options")
    extra = {
        "stream": True,
        "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True},
    }

    async def attempt(target: Target) -> _Opened:
        body = {**call.body_for(target.adapter.destination), **extra}

        async def send(headers: Mapping[str, str]) -> _Opened:
            stream = await target.adapter.open_stream(
                path, {**body, "model": target.deployment.model}, headers
            )
            events = stream.events()
            try:
                first = await anext(events, None)
            except BaseException:
                await stream.close()
                raise
            return _Opened(stream, events, first)

        return await traced(call, target, send)

    assert call.route is not None
    routed = await router.run(call.route, attempt, call.attempts)
    call.target = routed.target
    return StreamRelay(pipeline, call, routed.result, routed.lease)


class StreamRelay:
    def __init__(self, pipeline: Pipeline, call: Call, opened: _Opened, lease: Lease) -> None:
        self._pipeline = pipeline
        self._call = call
        self._opened = opened
        self._lease = lease  # the stream counts as in flight upstream until it ends
        self._observer = StreamObserver(
            keep_content=call.keeps_content, count=lambda text: pipeline.count(call, text)
        )
        self._ttft_ms: float | None = None
        answer = call.answer
        self._filter = answer.stream() if answer is not None and answer.active else None
        self._legacy = call.endpoint is Endpoint.COMPLETIONS

    async def pump(self, emit: Emit) -> None:
        """Forward every event; write the completed record; end with ``[DONE]``."""
        call = self._call
        ok = False
        failure: UpstreamError | None = None
        try:
            if self._opened.first is not None:
                await self._forward(self._opened.first, emit)
            async for data in self._opened.events:
                await self._forward(data, emit)
            if call.trace is not None:
                call.trace.upstream_done()
            await self._drain(emit)
            ok = True
        except TollhouseError as error:
            failure = error if isinstance(error, UpstreamError) else None
            await self._end_with_error(error, emit)
            return
        except asyncio.CancelledError:
            self._pipeline.write_nowait(
                call, call.disconnected(**self._outcome(), ttft_ms=self._ttft_ms)
            )
            raise
        except OSError:
            # Sending to the client failed: its connection is gone, nobody to answer.
            self._pipeline.write_nowait(
                call, call.disconnected(**self._outcome(), ttft_ms=self._ttft_ms)
            )
            raise
        except Exception as exc:
            # A fault in Tollhouse itself: still record how the stream ended, then let the
            # error surface (logged by the server). Nothing here continues the stream.
            self._pipeline.write_nowait(
                call,
                call.entry(
                    RecordKind.COMPLETED,
                    Completion.INTERNAL_ERROR,
                    error_type="internal_error",
                    error_message=f"stream relay failed: {type(exc).__name__}",
                    latency_ms=call.elapsed_ms(),
                    ttft_ms=self._ttft_ms,
                    **self._outcome(),
                ),
            )
            raise
        finally:
            self._lease.release(failure)
            await self._opened.stream.close()
            if not ok:
                self._pipeline.release(call)
        identity = self._identity()
        identity["response_content"] = await self._pipeline.redact_for_audit(
            call, identity["response_content"]
        )
        entry = self._pipeline.completed_ok(call, self._usage(), ttft_ms=self._ttft_ms, **identity)
        try:
            await self._pipeline.write(call, entry)
        except AuditUnavailableError as error:
            await emit(_error_event(error))
        await emit(DONE)

    async def _forward(self, data: bytes, emit: Emit) -> None:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                f"upstream {self._upstream()}: a stream event is not valid JSON"
            ) from exc
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError(
                f"upstream {self._upstream()}: a stream event is not an object"
            )
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise UpstreamError(f"upstream {self._upstream()} failed mid-stream: {message}")
        if self._filter is not None:
            if chunk.get("choices"):
                await self._filter.chunk(chunk)
                data = orjson.dumps(chunk)
            else:
                await self._drain(emit)  # held-back text goes before the usage chunk
        self._observer.observe(chunk)
        if not chunk.get("choices") and chunk.get("usage") and not self._call.client_wants_usage:
            return  # the usage chunk Tollhouse asked for on the client's behalf
        await self._send(data, emit)

    async def _send(self, data: bytes, emit: Emit) -> None:
        if self._ttft_ms is None:
            self._ttft_ms = self._call.elapsed_ms()
        await emit(b"data: " + data + b"\n\n")

    async def _drain(self, emit: Emit) -> None:
        """Send whatever the answer filter still holds (a stream ending unfinished)."""
        if self._filter is None:
            return
        tail = await self._filter.finish(self._legacy)
        if tail is not None:
            self._observer.observe(tail)
            await self._send(orjson.dumps(tail), emit)

    async def _end_with_error(self, error: TollhouseError, emit: Emit) -> None:
        call = self._call
        status = (
            Completion.TIMEOUT
            if isinstance(error, UpstreamTimeoutError)
            else Completion.STREAM_INTERRUPTED
        )
        entry = call.entry(
            RecordKind.COMPLETED,
            status,
            http_status=200,
            error_type=error.code or error.type,
            error_message=error.message,
            latency_ms=call.elapsed_ms(),
            ttft_ms=self._ttft_ms,
            **self._outcome(),
        )
        try:
            await self._pipeline.write(call, entry)
        except AuditUnavailableError:
            pass  # the client still learns the stream failed; the store is down anyway
        await emit(_error_event(error))
        await emit(DONE)

    def _usage(self) -> Usage:
        if self._observer.usage is not None:
            return self._observer.usage
        return Usage(
            self._pipeline.estimate_input(self._call),
            self._observer.estimated_output_tokens,
            estimated=True,
        )

    def _identity(self) -> dict[str, Any]:
        observer = self._observer
        return {
            "response_id": observer.response_id,
            "response_model": observer.response_model,
            "system_fingerprint": observer.system_fingerprint,
            "finish_reasons": observer.finish_reasons or None,
            "response_content": observer.content() if observer.keep_content else None,
        }

    def _outcome(self) -> dict[str, Any]:
        """Identity plus the (partial) usage and its cost, for a stream that did not finish:
        the upstream bills the tokens it produced whether or not the client saw them."""
        return {**self._identity(), **self._pipeline.charges(self._call, self._usage())}

    def _upstream(self) -> str:
        return self._call.target.adapter.name if self._call.target else "?"


def _error_event(error: TollhouseError) -> bytes:
    return b"data: " + orjson.dumps(error_payload(error)) + b"\n\n"
