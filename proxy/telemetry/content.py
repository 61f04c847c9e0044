"""Prompts and answers in the GenAI conventions' message shape (``gen_ai.input.messages``,
``gen_ai.output.messages``): ``[{"role", "parts": [{"type": "text", "content"}]}]``.

Only ever given what the audit trail stores as redacted content (personal data masked).
"""

from __future__ import annotations

from typing import Any

from proxy.endpoint import Endpoint

Message = dict[str, Any]


def input_messages(endpoint: Endpoint, request: Any) -> list[Message]:
    if not isinstance(request, dict):
        return []
    if endpoint is Endpoint.CHAT:
        messages = request.get("messages")
        return (
            [_chat_message(m) for m in messages if isinstance(m, dict)]
            if isinstance(messages, list)
            else []
        )
    key = "prompt" if endpoint is Endpoint.COMPLETIONS else "input"
    value = request.get(key)
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [
        {"role": "user", "parts": [{"type": "text", "content": t}]}
        for t in texts
        if isinstance(t, str)
    ]


def output_messages(endpoint: Endpoint, response: Any) -> list[Message]:
    if endpoint is Endpoint.EMBEDDINGS or not isinstance(response, dict):
        return []
    choices = response.get("choices")
    out: list[Message] = []
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        if endpoint is Endpoint.CHAT:
            message = choice.get("message")
            entry = _chat_message(message if isinstance(message, dict) else {"role": "assistant"})
        else:
            text = choice.get("text")
            parts = [{"type": "text", "content": text}] if isinstance(text, str) else []
            entry = {"role": "assistant", "parts": parts}
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            entry["finish_reason"] = reason
        out.append(entry)
    return out


def _chat_message(message: dict[str, Any]) -> Message:
    role = message.get("role")
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append({"type": "text", "content": part["text"]})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
    return {"role": role if isinstance(role, str) else "user", "parts": parts}
