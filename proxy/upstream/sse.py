"""Incremental server-sent-events decoding over arbitrary byte chunks."""

from __future__ import annotations

import re

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


class SSEDecoder:
    """Feed bytes in, get the ``data`` payload of each complete event out.

    Events are split on blank lines; multi-line ``data`` fields are joined with a newline
    as the SSE specification says. Comments and other fields are ignored.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[bytes] = []
        start = 0
        for match in _EVENT_END.finditer(buffer):
            data = _data_of(buffer[start : match.start()])
            if data is not None:
                events.append(data)
            start = match.end()
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event not terminated yet (non-empty at EOF means a cut stream)."""
        return self._buffer


def _data_of(block: bytes) -> bytes | None:
    if block.startswith(b"data:") and b"\n" not in block and b"\r" not in block:
        value = block[5:]  # the common case: one data line
        return value[1:] if value.startswith(b" ") else value
    lines: list[bytes] = []
    for line in _LINE.split(block):
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines) if lines else None
