"""A pure ASGI middleware: the server span of every request, the ``traceparent`` it
continues, and the proxy's own overhead as a response header.

It puts a `RequestTrace` in the request's state (``request.state.trace``) for the
pipeline, and keeps the span current while the app runs, so log lines carry its ids.
Health checks and metric scrapes are left out: they would drown the traces.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from governance.observability.logs import TRACE_IDS
from proxy.telemetry import semconv as sc
from proxy.telemetry.request import RequestTrace
from proxy.telemetry.setup import Telemetry
from proxy.telemetry.spans import ERROR, SERVER, SpanContext, parse_traceparent

OVERHEAD_HEADER = b"x-tollhouse-overhead-ms"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[Any, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        state = getattr(scope["app"].state, "tollhouse", None)
        telemetry: Telemetry = state.telemetry if state is not None else Telemetry.disabled()
        parent = _caller(scope)
        method = scope["method"]
        span = None
        token = None
        if telemetry.tracing:
            span = telemetry.tracer.start_span(
                method,
                SERVER,
                parent,
                {sc.HTTP_METHOD: method, sc.URL_PATH: scope["path"]},
            )
            token = TRACE_IDS.set((span.trace_id, span.span_id))
        trace = RequestTrace(telemetry, span, parent)
        scope.setdefault("state", {})["trace"] = trace
        status = 500

        async def send_with_overhead(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                overhead = f"{trace.measure_overhead():.2f}".encode()
                message["headers"] = [*message.get("headers", ()), (OVERHEAD_HEADER, overhead)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_overhead)
        finally:
            if token is not None:
                TRACE_IDS.reset(token)
            if telemetry.metering or span is not None:
                self._finish(telemetry, trace, scope, method, status)

    def _finish(
        self, telemetry: Telemetry, trace: RequestTrace, scope: Scope, method: str, status: int
    ) -> None:
        route = self._route_of(scope)
        labels: dict[str, str | int] = {sc.HTTP_METHOD: method, sc.HTTP_STATUS: status}
        if route is not None:
            labels[sc.HTTP_ROUTE] = route
        if status >= 500:
            labels[sc.ERROR_TYPE] = str(status)
        if telemetry.metering:
            telemetry.instruments.http_duration.record(time.perf_counter() - trace.started, labels)
        span = trace.span
        if span is None or not span.recording:
            return
        span.set_attributes(labels)
        if trace.overhead_ms is not None:
            span.set_attribute(sc.OVERHEAD_MS, round(trace.overhead_ms, 3))
        if route is not None and not trace.named:
            span.update_name(f"{method} {route}")
        if status >= 500:
            span.set_status(ERROR)
        span.end()

    def _route_of(self, scope: Scope) -> str | None:
        """The matched route's template (``/admin/keys/{key_id}``), never the raw path."""
        if self._routes is None:
            self._routes = dict(_templates(scope["app"].routes, ""))
        return self._routes.get(scope.get("endpoint"))


def _templates(routes: list[BaseRoute], prefix: str) -> list[tuple[Any, str]]:
    found: list[tuple[Any, str]] = []
    for route in routes:
        if isinstance(route, Route):
            found.append((route.endpoint, prefix + route.path))
        elif isinstance(route, Mount):
            inner = getattr(route.app, "routes", None) or route.routes
            found.extend(_templates(list(inner), prefix + route.path))
    return found


def _caller(scope: Scope) -> SpanContext | None:
    """The caller's trace context from ``traceparent``/``tracestate``; nothing else of the
    request is looked at."""
    traceparent = tracestate = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"tracestate":
            tracestate = value.decode("latin-1")
    return None if traceparent is None else parse_traceparent(traceparent, tracestate)
