"""The test upstream: Tollhouse's demo model server, plus failures on demand.

Faults are queued from the test thread (`FaultyUpstream.inject`) and consumed by the
requests that arrive next. Every request is logged in ``received`` so tests can check
what reached the upstream, and whether anything did.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiohttp import web

from tollhouse.demo.model_server import Answer, FakeModelServer, ServerThread, text_of

FaultKind = Literal[
    "status",  # answer `status` with an OpenAI error body (and `retry_after`, if set)
    "slow_first_byte",  # wait `delay_s` before answering at all
    "reset",  # close the connection without answering
    "malformed_json",  # 200 with a body that is not JSON
    "drop_mid_stream",  # send `after_events` stream events, then cut the connection
    "malformed_sse",  # send `after_events` events, then one that is not JSON
    "in_stream_error",  # send `after_events` events, then an error event
    "no_usage",  # answer normally but report no usage at all
    "endless",  # stream slowly until the client goes away
    "echo_tool",  # answer with a tool call whose arguments echo the last user message
    "fine_pieces",  # answer normally, streaming content 3 characters per chunk
]

# The fault that shapes the answer being built right now (echo_tool, fine_pieces).
_SHAPING: ContextVar[Fault | None] = ContextVar("shaping", default=None)


@dataclass
class Fault:
    kind: FaultKind
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    after_events: int = 2
    times: int = 1
    message: str | None = None  # the error message of a "status" fault


class FaultyUpstream(FakeModelServer):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.abandoned_streams = 0  # endless streams whose reader went away
        self.server: ServerThread | None = None

    def start(self) -> FaultyUpstream:
        self.server = ServerThread(self.application()).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(dataclasses.replace(fault))  # callers may reuse theirs

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.received.clear()
            self.abandoned_streams = 0

    def _take(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times == 0:
                self._faults.popleft()
            return fault

    async def handle(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        self.received.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        fault = self._take()
        if fault is None:
            return await super().handle(request, body)
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            payload = {
                "error": {
                    "message": fault.message or f"injected failure {fault.status}",
                    "type": "injected",
                    "code": f"injected_{fault.status}",
                }
            }
            return web.Response(
                body=orjson.dumps(payload),
                status=fault.status,
                content_type="application/json",
                headers=headers,
            )
        if fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.delay_s)
            return await super().handle(request, body)
        if fault.kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if fault.kind == "malformed_json":
            return web.Response(
                body=b'{"id": "broken", "choices": [', content_type="application/json"
            )
        if fault.kind == "no_usage":
            return await self._without_usage(request, body)
        if fault.kind in ("echo_tool", "fine_pieces"):
            token = _SHAPING.set(fault)
            try:
                return await super().handle(request, body)
            finally:
                _SHAPING.reset(token)
        return await self._faulty_stream(request, body, fault)

    def answer(self, body: dict[str, Any], chat: bool) -> Answer:
        answer = super().answer(body, chat)
        fault = _SHAPING.get()
        if fault is not None and fault.kind == "echo_tool" and chat:
            last = (body.get("messages") or [{}])[-1]
            arguments = orjson.dumps({"echo": text_of(last.get("content"))}).decode()
            return dataclasses.replace(
                answer, text="", finish="tool_calls", tool_name="lookup", tool_arguments=arguments
            )
        return answer

    async def send_stream(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        fault = _SHAPING.get()
        if fault is not None and fault.kind == "fine_pieces":
            events = [piece for event in events for piece in _split_content(event)]
        return await super().send_stream(request, events)

    async def _without_usage(
        self, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        chat = request.path.endswith("/chat/completions")
        if body.get("stream"):
            events = [e for e in self.stream_events(body, chat, include_usage=False)]
            return await self.send_stream(request, events)
        payload = self.chat(body) if chat else self.completion(body)
        del payload["usage"]
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def _faulty_stream(
        self, request: web.Request, body: dict[str, Any], fault: Fault
    ) -> web.StreamResponse:
        chat = request.path.endswith("/chat/completions")
        events = self.stream_events(body, chat, include_usage=True)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if fault.kind == "endless":
            try:
                while True:
                    await response.write(b"data: " + events[1] + b"\n\n")
                    await asyncio.sleep(0.02)
            except (ConnectionError, asyncio.CancelledError):
                self.abandoned_streams += 1
                raise
        for event in events[: fault.after_events]:
            await response.write(b"data: " + event + b"\n\n")
        if fault.kind == "drop_mid_stream":
            transport = request.transport
            assert transport is not None
            # abort() discards whatever is still buffered; let the events reach the socket
            # first, so the client sees exactly `after_events` events and then the cut.
            while transport.get_write_buffer_size() > 0:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.02)
            transport.abort()
            raise asyncio.CancelledError
        if fault.kind == "malformed_sse":
            await response.write(b"data: {this is not json\n\n")
        elif fault.kind == "in_stream_error":
            await response.write(
                b'data: {"error": {"message": "injected model crash", '
                b'"type": "internal_error"}}\n\n'
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _split_content(event: bytes) -> list[bytes]:
    """One chunk whose content is longer than 3 characters, as several 3-character ones."""
    chunk = orjson.loads(event)
    choices = chunk.get("choices") or []
    delta = choices[0].get("delta") if choices else None
    text = delta.get("content") if isinstance(delta, dict) else None
    if not isinstance(text, str) or len(text) <= 3:
        return [event]
    pieces = []
    for start in range(0, len(text), 3):
        choice = {**choices[0], "delta": {**delta, "content": text[start : start + 3]}}
        pieces.append(orjson.dumps({**chunk, "choices": [choice]}))
    return pieces
