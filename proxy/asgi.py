"""Responses that notice a client going away.

Starlette keeps running a handler after its client disconnects; for a proxy that means
paying for an upstream call nobody will read. `cancel_on_disconnect` races the work
against the ``http.disconnect`` message and cancels the work if the client leaves first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

T = TypeVar("T")

Emit = Callable[[bytes], Awaitable[None]]


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was complete."""


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def cancel_on_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it and raise `ClientDisconnected`."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    raise ClientDisconnected


class EventStreamResponse(Response):
    """A ``text/event-stream`` answer produced by ``pump(emit)``, cancelled on disconnect."""

    media_type = "text/event-stream"

    def __init__(self, pump: Callable[[Emit], Coroutine[Any, Any, None]], headers: dict[str, str]):
        # Like StreamingResponse: no body, so no Content-Length header.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers})
        self._pump = pump

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def emit(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            await cancel_on_disconnect(receive, self._pump(emit))
        except ClientDisconnected:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
