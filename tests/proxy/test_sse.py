"""The SSE decoder handles events split anywhere across network chunks."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from proxy.upstream.sse import SSEDecoder

STREAM = b'data: {"a": 1}\n\n: comment\n\ndata: {"b":\ndata: 2}\n\nevent: x\r\ndata: [DONE]\r\n\r\n'
EXPECTED = [b'{"a": 1}', b'{"b":\n2}', b"[DONE]"]


def test_whole_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(STREAM) == EXPECTED
    assert decoder.pending == b""


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
def test_any_split(cuts: list[int]) -> None:
    decoder = SSEDecoder()
    events = []
    points = [0, *sorted(set(cuts)), len(STREAM)]
    for start, end in itertools.pairwise(points):
        events.extend(decoder.feed(STREAM[start:end]))
    assert events == EXPECTED


def test_unterminated_event_stays_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {}\n\ndata: {cut") == [b"{}"]
    assert decoder.pending == b"data: {cut"
