"""``GET /metrics``: the process's metrics in the Prometheus text format.

Served only when ``telemetry.prometheus`` is on. Each worker process has its own
metrics; with several workers a scrape reads one of them (push OTLP instead, or run
one worker per port).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from proxy.state import AppState


async def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    state = request.app.state.tollhouse
    assert isinstance(state, AppState)
    registry = state.telemetry.prometheus
    if registry is None:
        return Response(status_code=404)
    body = await asyncio.to_thread(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
