"""The prompt and the answer as plain text, from stored audit content.

Stored content is ``{"request": ..., "response": ...}`` (governance.audit.records): the
admitted record keeps the request body (chat ``messages``, completion ``prompt``,
embeddings ``input``), the completed record the answer: the upstream's JSON without
``usage`` (``choices[].message.content`` or ``choices[].text``), or for a stream the
assembled choices (``[{"index", "content", ...}]``). With ``redacted`` retention the
texts hold placeholders instead of personal data; they are used as they are.
"""

from __future__ import annotations

from typing import Any


def _part_text(content: Any) -> str:
    """A message's ``content``: a string, or a list of parts of which text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def prompt_text(request: Any) -> str | None:
    """What the user asked: the last user message of a chat (the turn being answered),
    else the completion prompt or the embeddings input. None when there is no text."""
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                text = _part_text(message.get("content"))
                return text or None
        return None
    for key in ("prompt", "input"):
        value = request.get(key)
        if isinstance(value, str):
            return value or None
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return "\n".join(value)
    return None


def response_text(response: Any) -> str | None:
    """The answer's text (choices joined by a newline). None when nothing was stored.

    An answer stored with no text (only tool calls) is the empty string: it has a
    length, zero, and is no refusal.
    """
    choices: Any
    if isinstance(response, list):  # a stream's assembled choices
        choices = response
    elif isinstance(response, dict):
        choices = response.get("choices")
    else:
        return None
    if not isinstance(choices, list):
        return None
    pieces: list[str] = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            pieces.append(_part_text(message.get("content")))
        elif isinstance(choice.get("content"), str):
            pieces.append(choice["content"])
        elif isinstance(choice.get("text"), str):
            pieces.append(choice["text"])
    return "\n".join(p for p in pieces if p)
