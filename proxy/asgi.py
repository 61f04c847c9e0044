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
    """Run ``work``; if the client disconnects first, cancel it and raise `ClientDisconnected`.

    ``work`` runs in the calling task; one watcher task waits for the disconnect and
    cancels the caller. The watcher only runs while the caller is suspended, which is
    inside ``work``, so its cancellation always lands there (as `asyncio.timeout` relies
    on too) and never after ``work`` has returned.
    """
    caller = asyncio.current_task()
    assert caller is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _disconnected(receive)
        gone = True
        caller.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone and caller.uncancel() == 0:  # our cancellation, not someone else's
            raise ClientDisconnected from None
        raise
    finally:
        watcher.cancel()


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
