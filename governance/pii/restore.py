"""Restoring pseudonyms in a streamed answer, one fragment at a time.

A placeholder such as ``<PERSON_12>`` may arrive split over several chunks. The
restorer passes text through at once, except a tail that could still be the start of
a placeholder; that tail is at most as long as the longest placeholder of the request,
so hold-back is bounded and the stream is never buffered whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from governance.pii.redact import Pseudonyms, restore

# A tail that might grow into a placeholder: "<", "<PER", "<PERSON_", "<PERSON_1".
_OPEN_TAIL = re.compile(r"<[A-Z0-9_]*\Z")


class StreamRestorer:
    """Feed fragments in order; get back text that is safe to send now."""

    def __init__(self, pseudonyms: Pseudonyms, escape: Callable[[str], str] | None = None):
        self._pseudonyms = pseudonyms
        self._escape = escape
        self._limit = pseudonyms.longest
        self._pending = ""

    def feed(self, fragment: str) -> str:
        text = self._pending + fragment
        cut = self._hold_from(text)
        self._pending = text[cut:]
        return restore(text[:cut], self._pseudonyms, self._escape)

    def flush(self) -> str:
        """Whatever is held back, at the end of the text (a lone ``<`` stays as it is)."""
        text, self._pending = self._pending, ""
        return restore(text, self._pseudonyms, self._escape)

    @property
    def holding(self) -> int:
        return len(self._pending)

    def _hold_from(self, text: str) -> int:
        start = text.rfind("<", max(0, len(text) - self._limit))
        if start == -1:
            return len(text)
        if _OPEN_TAIL.match(text, start) and len(text) - start < self._limit:
            return start
        return len(text)
