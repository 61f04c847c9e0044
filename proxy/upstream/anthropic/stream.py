"""Anthropic Messages stream events as OpenAI ``chat.completion.chunk`` payloads.

Each SSE event's ``data`` names its own ``type`` (the same as the ``event:`` line), so
the events can be read with the shared `SSEDecoder`. The chunks follow OpenAI's order:
one with ``delta.role`` (at ``message_start``), text as ``delta.content``, each
``tool_use`` block as ``delta.tool_calls`` with its own ``index`` (id, type and name
first, then the ``input_json_delta`` pieces as ``function.arguments``), a chunk with
the ``finish_reason`` (at ``message_delta``) and, when usage was asked for, a usage
chunk with ``choices: []`` (at ``message_stop``). ``ping`` and unknown events are
skipped, as Anthropic asks of clients; an ``error`` event raises.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from governance.errors import UpstreamProtocolError
from proxy.upstream.anthropic.errors import stream_error
from proxy.upstream.anthropic.response import chat_usage, finish_reason


class ChunkTranslator:
    """Turns one stream's events, in order, into chunk payloads (JSON bytes)."""

    def __init__(self, upstream: str, include_usage: bool, created: int | None = None) -> None:
        self._upstream = upstream
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._id: Any = None
        self._model: Any = None
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self.started = False
        self.stopped = False

    def translate(self, event: dict[str, Any]) -> list[bytes]:
        """The chunks one event stands for (often none)."""
        kind = event.get("type")
        if kind == "error":
            raise stream_error(self._upstream, event)
        if kind == "message_start":
            return self._start(event)
        if not self.started:
            if kind == "ping":
                return []
            raise UpstreamProtocolError(
                f"upstream {self._upstream}: stream event {kind!r} before message_start"
            )
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "message_stop":
            self.stopped = True
            usage = chat_usage(self._usage) if self._include_usage else None
            return [self._chunk([], usage=usage)] if usage is not None else []
        return []  # ping, content_block_stop and event types added later

    def _start(self, event: dict[str, Any]) -> list[bytes]:
        message = event.get("message")
        if not isinstance(message, dict):
            raise UpstreamProtocolError(f"upstream {self._upstream}: message_start without message")
        self.started = True
        self._id = message.get("id")
        self._model = message.get("model")
        self._merge_usage(message.get("usage"))
        return [self._delta({"role": "assistant", "content": ""})]

    def _block_start(self, event: dict[str, Any]) -> list[bytes]:
        block = event.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text" and block.get("text"):
            return [self._delta({"content": str(block["text"])})]
        if block.get("type") != "tool_use":
            return []
        tool_index = len(self._tools)
        self._tools[_index(event)] = tool_index
        call = {
            "index": tool_index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self._delta({"tool_calls": [call]})]

    def _block_delta(self, event: dict[str, Any]) -> list[bytes]:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta":
            text = delta.get("text")
            return [self._delta({"content": text})] if isinstance(text, str) and text else []
        if delta.get("type") == "input_json_delta":
            piece = delta.get("partial_json")
            tool_index = self._tools.get(_index(event))
            if tool_index is None or not isinstance(piece, str) or not piece:
                return []
            call = {"index": tool_index, "function": {"arguments": piece}}
            return [self._delta({"tool_calls": [call]})]
        return []  # thinking, signature and citation deltas have no OpenAI form

    def _message_delta(self, event: dict[str, Any]) -> list[bytes]:
        self._merge_usage(event.get("usage"))
        delta = event.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop_reason is None:
            return []
        return [self._delta({}, finish=finish_reason(stop_reason))]

    def _merge_usage(self, usage: Any) -> None:
        """Counts in later events replace earlier ones (output_tokens is cumulative)."""
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._chunk([choice])

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return orjson.dumps(chunk)


def _index(event: dict[str, Any]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else 0
