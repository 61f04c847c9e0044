"""An OpenAI chat completions body as an Anthropic Messages API body.

What is translated: ``system``/``developer`` messages become the top-level ``system``
string (joined by blank lines, wherever they stood); ``user``/``assistant`` messages
become turns, consecutive turns of one role merged; text parts become text blocks,
``image_url`` parts holding a base64 ``data:`` URL become image blocks; assistant
``tool_calls`` become ``tool_use`` blocks and ``tool`` messages ``tool_result`` blocks in
a user turn. ``max_completion_tokens``/``max_tokens`` (Anthropic requires one; default
`DEFAULT_MAX_TOKENS`), ``temperature``, ``top_p``, ``stop``, ``tools``, ``tool_choice``,
``parallel_tool_calls: false``, ``user`` and ``stream`` are carried over.

What is refused (400, see `refused`), because dropping it would change the answer:
``n`` > 1, ``logprobs``/``top_logprobs``, a ``response_format`` other than text, a
non-empty ``logit_bias``, audio output, the legacy ``functions``/``function_call``,
non-function tools, image URLs that are not base64 data URLs, and other content parts.

What is ignored on purpose (hints that do not change what a valid answer is, or
OpenAI-side features): ``seed``, ``presence_penalty``, ``frequency_penalty``,
``parallel_tool_calls: true``, ``store``, ``metadata``, ``service_tier``,
``prediction``, ``reasoning_effort``, ``stream_options`` (usage is always reported)
and any field not named here.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from proxy.upstream.anthropic.errors import refused

DEFAULT_MAX_TOKENS = 4096

_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=\s]+)$")


def to_messages_request(upstream: str, body: dict[str, Any]) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat ``body`` (``model`` already the
    deployment's); raises `refused` errors for what Anthropic cannot honour."""
    _refuse_unsupported(upstream, body)
    system, turns = _conversation(upstream, body.get("messages"))
    out: dict[str, Any] = {"model": body.get("model"), "messages": turns}
    if system:
        out["system"] = system
    out["max_tokens"] = _max_tokens(upstream, body)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [str(s) for s in stop]
    if body.get("tools"):
        out["tools"] = [_tool(upstream, tool) for tool in body["tools"]]
    choice = _tool_choice(upstream, body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and out.get("tools"):  # without tools, "none" is the default
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def _refuse_unsupported(upstream: str, body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise refused(upstream, "n > 1 (several choices) is not supported", param="n")
    for name in ("logprobs", "top_logprobs"):
        if body.get(name):
            raise refused(upstream, f"{name} is not supported", param=name)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        raise refused(
            upstream,
            f"response_format {response_format.get('type')!r} is not supported",
            param="response_format",
        )
    if body.get("logit_bias"):
        raise refused(upstream, "logit_bias is not supported", param="logit_bias")
    modalities = body.get("modalities")
    if body.get("audio") or (isinstance(modalities, list) and set(modalities) - {"text"}):
        raise refused(upstream, "audio output is not supported", param="modalities")
    for name in ("functions", "function_call"):
        if body.get(name):
            raise refused(upstream, f"the legacy {name} field is not supported; use tools")


def _max_tokens(upstream: str, body: dict[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise refused(upstream, f"{name} must be a positive integer", param=name)
            return value
    return DEFAULT_MAX_TOKENS


def _conversation(upstream: str, messages: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise refused(upstream, "messages must be a non-empty list", param="messages")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise refused(upstream, "each message must be an object", param="messages")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_texts(upstream, message.get("content")))
            continue
        if role == "user":
            blocks = _user_blocks(upstream, message.get("content"))
            turn_role = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(upstream, message)
            turn_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(upstream, message)]
            turn_role = "user"
        else:
            raise refused(upstream, f"messages with role {role!r} are not supported")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    return "\n\n".join(text for text in system if text), turns


def _texts(upstream: str, content: Any) -> list[str]:
    """The texts of a system/tool message's content (a string or text parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise refused(upstream, "only text content is supported here", param="messages")
            texts.append(str(part.get("text", "")))
        return texts
    raise refused(upstream, "message content must be a string or a list", param="messages")


def _user_blocks(upstream: str, content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise refused(upstream, "message content must be a string or a list", param="messages")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image(upstream, part.get("image_url")))
        else:
            raise refused(upstream, f"content parts of type {kind!r} are not supported")
    return blocks


def _image(upstream: str, image_url: Any) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise refused(
            upstream,
            "images must be base64 data URLs (data:image/png|jpeg|gif|webp;base64,...)",
            param="messages",
        )
    data = "".join(match.group(2).split())
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": match.group(1), "data": data},
    }


def _assistant_blocks(upstream: str, message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, list):  # text and refusal parts
        pieces = [
            str(p.get("text") or p.get("refusal") or "") for p in content if isinstance(p, dict)
        ]
        content = "".join(pieces)
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    for call in message.get("tool_calls") or ():
        blocks.append(_tool_use(upstream, call))
    return blocks


def _tool_use(upstream: str, call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not call.get("id") or not function.get("name"):
        raise refused(upstream, "a tool call needs an id and a function name", param="messages")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError as exc:
        raise refused(
            upstream, f"tool call {call['id']}: arguments are not valid JSON", param="messages"
        ) from exc
    if not isinstance(parsed, dict):
        raise refused(
            upstream, f"tool call {call['id']}: arguments must be a JSON object", param="messages"
        )
    return {
        "type": "tool_use",
        "id": str(call["id"]),
        "name": str(function["name"]),
        "input": parsed,
    }


def _tool_result(upstream: str, message: dict[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise refused(upstream, "a tool message needs a tool_call_id", param="messages")
    text = "".join(_texts(upstream, message.get("content")))
    return {"type": "tool_result", "tool_use_id": call_id, "content": text}


def _tool(upstream: str, tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise refused(upstream, "only function tools are supported", param="tools")
    if not function.get("name"):
        raise refused(upstream, "a function tool needs a name", param="tools")
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    parameters = function.get("parameters")
    out["input_schema"] = (
        parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
    )
    return out


def _tool_choice(upstream: str, choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise refused(upstream, f"tool_choice {choice!r} is not supported", param="tool_choice")
    if parallel is False and (out is None or out["type"] != "none"):
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out
