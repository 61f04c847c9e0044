"""What an answer says about itself: usage, identity and (optionally) its content."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from governance.spend import estimate_tokens


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    estimated: bool
    cached_input_tokens: int = 0  # the part of input_tokens read from the prompt cache


def reported_usage(payload: dict[str, Any]) -> Usage | None:
    """The usage an answer (or a stream's usage chunk) reports, as OpenAI shapes it:
    ``prompt_tokens``, ``completion_tokens`` (absent for embeddings) and
    ``prompt_tokens_details.cached_tokens``."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if not _count(prompt) or not _count(completion):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if not _count(cached) or cached > prompt:
        cached = 0
    return Usage(prompt, completion, estimated=False, cached_input_tokens=cached)


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def answer_text(choices: list[Any]) -> str:
    """Text of a non-streamed chat or text completion's choices."""
    pieces: list[str] = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                pieces.append(message["content"])
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    pieces.append(
                        str(function.get("name", "")) + str(function.get("arguments", ""))
                    )
        elif isinstance(choice.get("text"), str):
            pieces.append(choice["text"])
    return "\n".join(pieces)


def finish_reasons(choices: list[Any]) -> list[str]:
    return [
        c["finish_reason"]
        for c in choices
        if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
    ]


@dataclass(slots=True)
class _ChoiceAccumulator:
    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None


class StreamObserver:
    """Follows a stream's chunks: usage, ids, finish reasons, a token estimate, content.

    Content is only kept when ``keep_content`` (the app's audit retention is ``full``);
    the stream itself is never held back for this.
    """

    def __init__(self, keep_content: bool, count: Callable[[str], int] = estimate_tokens) -> None:
        self.keep_content = keep_content
        self._count = count
        self.usage: Usage | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.system_fingerprint: str | None = None
        self.estimated_output_tokens = 0
        self._choices: dict[int, _ChoiceAccumulator] = {}

    def observe(self, chunk: dict[str, Any]) -> None:
        if self.response_id is None:
            self.response_id = _str_or_none(chunk.get("id"))
            self.response_model = _str_or_none(chunk.get("model"))
        fingerprint = chunk.get("system_fingerprint")
        if isinstance(fingerprint, str):
            self.system_fingerprint = fingerprint
        usage = reported_usage(chunk)
        if usage is not None:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                self._observe_choice(choice)

    def _observe_choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        acc = self._choices.get(index)
        if acc is None:
            acc = self._choices[index] = _ChoiceAccumulator()
        if isinstance(choice.get("finish_reason"), str):
            acc.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(text, str) and text:
            self.estimated_output_tokens += self._count(text)
            if self.keep_content:
                acc.text.append(text)
        if isinstance(delta, dict):
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self._observe_tool_call(acc, call)

    def _observe_tool_call(self, acc: _ChoiceAccumulator, call: dict[str, Any]) -> None:
        function = call.get("function") or {}
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(arguments, str):
            self.estimated_output_tokens += self._count(arguments)
        if not self.keep_content:
            return
        slot = acc.tool_calls.setdefault(
            call.get("index", 0), {"id": None, "name": "", "arguments": ""}
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if isinstance(function, dict):
            slot["name"] += function.get("name") or ""
            slot["arguments"] += arguments or ""

    @property
    def finish_reasons(self) -> list[str]:
        return [a.finish_reason for _, a in sorted(self._choices.items()) if a.finish_reason]

    def content(self) -> list[dict[str, Any]]:
        """The assembled answer, per choice, for the audit record."""
        return [
            {
                "index": index,
                "content": "".join(acc.text),
                "tool_calls": list(acc.tool_calls.values()) or None,
                "finish_reason": acc.finish_reason,
            }
            for index, acc in sorted(self._choices.items())
        ]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
