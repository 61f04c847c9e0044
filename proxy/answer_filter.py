"""What happens to an answer on its way back: PII masking (where the policy asks) and
restoring the request's pseudonyms.

Non-streamed answers are rewritten in place. Streams go through `StreamFilter`, which
holds back only what it must: for restoring, a possible placeholder prefix; for
masking, the current sentence (at most ``SEGMENT_MAX`` characters), because an entity
can only be recognised with a little context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from governance.pii import Finding
from governance.pii.redact import Pseudonyms, mask_token, replace, restore
from governance.pii.restore import StreamRestorer

SEGMENT_MAX = 400
_BOUNDARY = re.compile(r"[.!?;:]\s|\n")

Masker = Callable[[str], Awaitable[str]]


def json_escape(value: str) -> str:
    """A value as it must appear inside a JSON string (tool-call arguments)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def masker_for(
    analyze: Callable[[list[str]], Awaitable[list[list[Finding]]]],
    entities: frozenset[str],
    threshold: float,
) -> Masker:
    async def mask(text: str) -> str:
        if not text.strip():
            return text
        [findings] = await analyze([text])
        wanted = [f for f in findings if f.entity_type in entities and f.score >= threshold]
        return replace(text, wanted, lambda f, _value: mask_token(f.entity_type))

    return mask


class AnswerFilter:
    """Masks, then restores. Inactive (and free) when there is nothing to do."""

    def __init__(self, pseudonyms: Pseudonyms, masker: Masker | None) -> None:
        self._pseudonyms = pseudonyms
        self._masker = masker

    @property
    def active(self) -> bool:
        return self._masker is not None or bool(self._pseudonyms)

    async def text(self, text: str, *, arguments: bool = False) -> str:
        if self._masker is not None and not arguments:
            text = await self._masker(text)
        return self._restore(text, arguments)

    def _restore(self, text: str, arguments: bool) -> str:
        return restore(text, self._pseudonyms, json_escape if arguments else None)

    async def payload(self, payload: dict[str, Any]) -> None:
        """Rewrite a non-streamed chat or completions answer in place."""
        for choice in _choices(payload):
            if isinstance(choice.get("text"), str):
                choice["text"] = await self.text(choice["text"])
            message = choice.get("message")
            if not isinstance(message, dict):
                continue
            if isinstance(message.get("content"), str):
                message["content"] = await self.text(message["content"])
            for call in _list(message.get("tool_calls")):
                function = call.get("function")
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    function["arguments"] = await self.text(function["arguments"], arguments=True)
            legacy = message.get("function_call")
            if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
                legacy["arguments"] = await self.text(legacy["arguments"], arguments=True)

    def stream(self) -> StreamFilter:
        return StreamFilter(self._pseudonyms, self._masker)


class _Channel:
    """One growing text: a choice's content, or one tool call's arguments."""

    def __init__(self, pseudonyms: Pseudonyms, masker: Masker | None, arguments: bool):
        self._masker = None if arguments else masker
        self._restorer = StreamRestorer(pseudonyms, json_escape if arguments else None)
        self._segment = ""

    async def feed(self, text: str) -> str:
        if self._masker is not None:
            self._segment += text
            cut = _segment_end(self._segment)
            if cut == 0:
                return ""
            text, self._segment = self._segment[:cut], self._segment[cut:]
            text = await self._masker(text)
        return self._restorer.feed(text)

    async def flush(self) -> str:
        text = ""
        if self._masker is not None and self._segment:
            text, self._segment = await self._masker(self._segment), ""
        return self._restorer.feed(text) + self._restorer.flush()


def _segment_end(text: str) -> int:
    """Where a complete segment ends (0: keep waiting)."""
    last = None
    for last in _BOUNDARY.finditer(text):  # noqa: B007 - we want the last match
        pass
    if last is not None:
        return last.end()
    if len(text) >= SEGMENT_MAX:
        space = text.rfind(" ")
        return space + 1 if space > 0 else len(text)
    return 0


class StreamFilter:
    """Rewrites chunks of one stream; `finish` yields what is still held back."""

    def __init__(self, pseudonyms: Pseudonyms, masker: Masker | None) -> None:
        self._pseudonyms = pseudonyms
        self._masker = masker
        self._channels: dict[tuple[int, str, int], _Channel] = {}
        self._template: dict[str, Any] = {}

    def _channel(self, key: tuple[int, str, int]) -> _Channel:
        channel = self._channels.get(key)
        if channel is None:
            channel = _Channel(self._pseudonyms, self._masker, arguments=key[1] != "content")
            self._channels[key] = channel
        return channel

    async def chunk(self, chunk: dict[str, Any]) -> None:
        """Rewrite one chunk in place."""
        if not self._template:
            self._template = {
                k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk
            }
        for choice in _choices(chunk):
            index = choice.get("index", 0)
            finished = choice.get("finish_reason") is not None
            if isinstance(choice.get("text"), str):  # legacy completions
                choice["text"] = await self._through(
                    (index, "content", 0), choice["text"], finished
                )
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str) or finished:
                text = delta.get("content") or ""
                out = await self._through((index, "content", 0), text, finished)
                if out or isinstance(delta.get("content"), str):
                    delta["content"] = out
            for call in _list(delta.get("tool_calls")):
                function = call.get("function")
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    key = (index, "tool", int(call.get("index", 0)))
                    function["arguments"] = await self._through(key, function["arguments"], False)
            legacy = delta.get("function_call")
            if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
                key = (index, "function", 0)
                legacy["arguments"] = await self._through(key, legacy["arguments"], False)
            if finished:
                await self._flush_calls(index, delta)

    async def _through(self, key: tuple[int, str, int], text: str, finished: bool) -> str:
        channel = self._channel(key)
        out = await channel.feed(text) if text else ""
        if finished:
            out += await channel.flush()
            del self._channels[key]
        return out

    async def _flush_calls(self, index: int, delta: dict[str, Any]) -> None:
        for key in [k for k in self._channels if k[0] == index and k[1] != "content"]:
            rest = await self._channels.pop(key).flush()
            if not rest:
                continue
            if key[1] == "tool":
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": key[2], "function": {"arguments": rest}})
            else:
                delta.setdefault("function_call", {"arguments": ""})["arguments"] += rest

    async def finish(self, legacy: bool) -> dict[str, Any] | None:
        """A last chunk with anything still held back (a stream that ended unfinished)."""
        choices: dict[int, dict[str, Any]] = {}
        for key in list(self._channels):
            rest = await self._channels.pop(key).flush()
            if not rest:
                continue
            index, kind, position = key
            if legacy:
                choices.setdefault(index, {"index": index, "text": "", "finish_reason": None})
                choices[index]["text"] += rest
                continue
            choice = choices.setdefault(index, {"index": index, "delta": {}, "finish_reason": None})
            delta = choice["delta"]
            if kind == "content":
                delta["content"] = rest
            elif kind == "tool":
                delta.setdefault("tool_calls", []).append(
                    {"index": position, "function": {"arguments": rest}}
                )
            else:
                delta["function_call"] = {"arguments": rest}
        if not choices:
            return None
        return {**self._template, "choices": [choices[i] for i in sorted(choices)]}


def _choices(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return _list(payload.get("choices"))


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
