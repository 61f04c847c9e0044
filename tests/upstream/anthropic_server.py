"""A loopback fake of the Anthropic Messages API (``POST /v1/messages``).

It records every request (path, body, headers) in ``received`` and answers with a
queued `Scripted` reply, or by default with a short text (or a tool call when the
request offers tools and the last turn is not a tool result). Streams follow the real
event sequence: ``message_start``, ``ping``, per block ``content_block_start`` /
``content_block_delta``\\* / ``content_block_stop``, ``message_delta``, ``message_stop``.
Errors use Anthropic's body shape. Synthetic data only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tollhouse.demo.model_server import ServerThread

DEFAULT_TEXT = "Hello from the fake Messages API."
DEFAULT_USAGE = {
    "input_tokens": 21,
    "output_tokens": 8,
    "cache_read_input_tokens": 4,
    "cache_creation_input_tokens": 0,
}


@dataclass
class Scripted:
    """The next answer(s). ``status`` >= 400 answers an error of ``error_type``."""

    status: int = 200
    error_type: str = "api_error"
    message: str = "scripted failure"
    retry_after: str | None = None
    blocks: list[dict[str, Any]] | None = None  # content blocks; None: the default
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    error_after_events: int | None = None  # stream: send N events, then an error event
    cut_after_events: int | None = None  # stream: send N events, then end the body
    times: int = 1


@dataclass
class AnthropicServer:
    model_suffix: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    server: ServerThread | None = None
    _queue: deque[Scripted] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> AnthropicServer:
        app = web.Application()
        app.router.add_post("/v1/messages", self._handle)
        self.server = ServerThread(app).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def base_url(self) -> str:
        """What a ``kind: anthropic`` upstream's ``base_url`` is (no ``/v1``)."""
        assert self.server is not None
        return f"http://{self.server.host}:{self.server.port}"

    def script(self, reply: Scripted) -> None:
        with self._lock:
            self._queue.append(dataclasses.replace(reply))

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.received.clear()

    def _take(self) -> Scripted:
        with self._lock:
            if not self._queue:
                return Scripted()
            reply = self._queue[0]
            reply.times -= 1
            if reply.times == 0:
                self._queue.popleft()
            return dataclasses.replace(reply)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.received.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        reply = self._take()
        if reply.status >= 400:
            error = {"type": "error", "error": {"type": reply.error_type, "message": reply.message}}
            headers = {"retry-after": reply.retry_after} if reply.retry_after else {}
            return web.Response(
                body=orjson.dumps(error),
                status=reply.status,
                content_type="application/json",
                headers=headers,
            )
        message = self._message(body, reply)
        if body.get("stream"):
            return await self._stream(request, message, reply)
        return web.Response(
            body=orjson.dumps(message),
            content_type="application/json",
            headers={"request-id": "req_fake_1"},
        )

    def _message(self, body: dict[str, Any], reply: Scripted) -> dict[str, Any]:
        blocks = reply.blocks
        if blocks is None:
            last = body["messages"][-1]["content"]
            answered_tool = any(b.get("type") == "tool_result" for b in last)
            if body.get("tools") and not answered_tool:
                tool = body["tools"][0]["name"]
                blocks = [
                    {"type": "text", "text": "Let me look that up."},
                    {"type": "tool_use", "id": "toolu_fake_1", "name": tool, "input": {"q": "x"}},
                ]
            else:
                blocks = [{"type": "text", "text": DEFAULT_TEXT}]
        stop = reply.stop_reason or (
            "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        )
        return {
            "id": "msg_fake_0001",
            "type": "message",
            "role": "assistant",
            "model": body["model"] + self.model_suffix,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": reply.usage or DEFAULT_USAGE,
        }

    async def _stream(
        self, request: web.Request, message: dict[str, Any], reply: Scripted
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "request-id": "req_fake_2"}
        )
        await response.prepare(request)
        for number, event in enumerate(stream_events(message)):
            if reply.error_after_events is not None and number == reply.error_after_events:
                error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
                await response.write(_sse(error))
                break
            if reply.cut_after_events is not None and number == reply.cut_after_events:
                break
            await response.write(_sse(event))
            await asyncio.sleep(0)
        await response.write_eof()
        return response


def stream_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The Messages stream events that deliver ``message``, as the real API orders them."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {**message, "content": [], "stop_reason": None, "usage": start_usage},
        },
        {"type": "ping"},
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            text = block["text"]
            for at in range(0, len(text), 6):
                delta = {"type": "text_delta", "text": text[at : at + 6]}
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            arguments = orjson.dumps(block["input"]).decode()
            pieces = [""] + [arguments[at : at + 5] for at in range(0, len(arguments), 5)]
            for piece in pieces:
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
