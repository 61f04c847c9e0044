"""The interface every upstream adapter implements.

An adapter turns an OpenAI-shaped request body into a call to one provider and its
answer back into OpenAI shape, raising only `governance.errors.UpstreamError`s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from governance.config.schema import Destination


@dataclass(frozen=True, slots=True)
class JsonReply:
    """A complete, successful, non-streamed answer."""

    payload: dict[str, Any]
    raw: bytes
    # The upstream's ``fingerprint_headers`` that were present (lower-case names).
    watched_headers: dict[str, str] = field(default_factory=dict)


class EventStream(Protocol):
    """A streamed answer: the ``data`` payload of each event, ending at ``[DONE]``."""

    watched_headers: dict[str, str]

    def events(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class UpstreamAdapter(Protocol):
    name: str
    destination: Destination

    async def call(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> JsonReply:
        """``headers``: extra request headers (the trace context, ``traceparent``)."""
        ...

    async def open_stream(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> EventStream: ...

    async def close(self) -> None: ...
