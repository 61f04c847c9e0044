"""Every place text travels in a request body, and putting redacted text back.

Covered: chat message content (strings and text parts) for every role, tool-call and
function-call arguments, tool results, the legacy completions ``prompt`` and embeddings
``input`` (string or list). Token-id arrays cannot be inspected; `opaque_input` reports
them so that a policy needing analysis can refuse them rather than wave them through.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from governance.policy.decision import TextSlot
from proxy.endpoint import Endpoint

Path = tuple[str | int, ...]


def text_slots(endpoint: Endpoint, body: Mapping[str, Any]) -> list[TextSlot]:
    if endpoint is Endpoint.CHAT:
        return _chat(body)
    key = "prompt" if endpoint is Endpoint.COMPLETIONS else "input"
    return _strings(body.get(key), (key,), key)


def opaque_input(endpoint: Endpoint, body: Mapping[str, Any]) -> bool:
    """True when the request carries token ids instead of text."""
    if endpoint is Endpoint.CHAT:
        return False
    value = body.get("prompt" if endpoint is Endpoint.COMPLETIONS else "input")
    if isinstance(value, list):
        return any(not isinstance(v, str) for v in value)
    return value is not None and not isinstance(value, str)


def _strings(value: Any, path: Path, kind: str) -> list[TextSlot]:
    if isinstance(value, str):
        return [TextSlot(path, value, kind)]
    if isinstance(value, list):
        return [TextSlot((*path, i), v, kind) for i, v in enumerate(value) if isinstance(v, str)]
    return []


def _chat(body: Mapping[str, Any]) -> list[TextSlot]:
    slots: list[TextSlot] = []
    messages = body.get("messages")
    if not isinstance(messages, list):
        return slots
    path: Path
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        kind = role if isinstance(role, str) else "user"
        content = message.get("content")
        if isinstance(content, str):
            slots.append(TextSlot(("messages", i, "content"), content, kind))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    slots.append(
                        TextSlot(("messages", i, "content", j, "text"), part["text"], kind)
                    )
        calls = message.get("tool_calls")
        for k, call in enumerate(calls if isinstance(calls, list) else []):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                path = ("messages", i, "tool_calls", k, "function", "arguments")
                slots.append(TextSlot(path, function["arguments"], "arguments"))
        legacy = message.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
            path = ("messages", i, "function_call", "arguments")
            slots.append(TextSlot(path, legacy["arguments"], "arguments"))
    return slots


def with_texts(body: Mapping[str, Any], texts: Mapping[Path, str]) -> dict[str, Any]:
    """A copy of ``body`` with the text at each path replaced; shared parts are not copied."""
    out = dict(body)
    for path, text in texts.items():
        node: Any = out
        for step in path[:-1]:
            child = node[step]
            child = list(child) if isinstance(child, list) else dict(child)
            node[step] = child
            node = child
        node[path[-1]] = text
    return out


_TEXT_KEYS = frozenset({"content", "text", "arguments"})


def collect_texts(value: Any, out: list[str], key: str | None = None) -> None:
    """Strings under content/text/arguments keys, depth first."""
    if isinstance(value, str) and key in _TEXT_KEYS:
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            collect_texts(v, out, k)
    elif isinstance(value, list):
        for v in value:
            collect_texts(v, out, key)


def substitute_texts(value: Any, masked: Iterator[str], key: str | None = None) -> Any:
    """``value`` with the strings `collect_texts` found replaced, in the same order."""
    if isinstance(value, str) and key in _TEXT_KEYS:
        return next(masked)
    if isinstance(value, dict):
        return {k: substitute_texts(v, masked, k) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_texts(v, masked, key) for v in value]
    return value
