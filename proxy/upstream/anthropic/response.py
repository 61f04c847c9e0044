"""An Anthropic Messages answer as an OpenAI ``chat.completion``.

Text blocks are concatenated into ``message.content``; ``tool_use`` blocks become
``message.tool_calls`` with JSON-string arguments; other blocks (thinking) are left out.
Usage counts the prompt as OpenAI does: everything read, cache reads and cache writes
included, with the cache reads in ``prompt_tokens_details.cached_tokens``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from governance.errors import UpstreamProtocolError

# Anthropic stop_reason -> OpenAI finish_reason (unknown reasons read as "stop").
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """The OpenAI ``finish_reason`` for an Anthropic ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def to_chat_completion(
    upstream: str, message: dict[str, Any], created: int | None = None
) -> dict[str, Any]:
    """The ``chat.completion`` for a Messages API answer; garbage raises
    `UpstreamProtocolError`."""
    content = message.get("content")
    if message.get("type") != "message" or not isinstance(content, list):
        raise UpstreamProtocolError(f"upstream {upstream}: answer is not a Messages API message")
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            raise UpstreamProtocolError(f"upstream {upstream}: a content block is not an object")
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    payload: dict[str, Any] = {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason")),
            }
        ],
    }
    usage = chat_usage(message.get("usage"))
    if usage is not None:
        payload["usage"] = usage
    return payload


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """OpenAI ``usage`` for an Anthropic ``usage`` object (None when it has no counts)."""
    if not isinstance(usage, dict):
        return None
    fresh = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    output = _count(usage.get("output_tokens"))
    if fresh is None and output is None:
        return None
    prompt = (fresh or 0) + (read or 0) + (written or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": output or 0,
        "total_tokens": prompt + (output or 0),
    }
    if read is not None or written is not None:
        out["prompt_tokens_details"] = {"cached_tokens": read or 0}
    return out


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
