"""A pure ASGI middleware: the server span of every request, the ``traceparent`` it
continues, and the proxy's own overhead as a response header.

It puts a `RequestTrace` in the request's state (``request.state.trace``) for the
pipeline, and keeps the span current while the app runs, so log lines carry its ids.
Health checks and metric scrapes are left out: they would drown the traces.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.telemetry import semconv as sc
from proxy.telemetry.request import RequestTrace
from proxy.telemetry.setup import Telemetry

OVERHEAD_HEADER = b"x-tollhouse-overhead-ms"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_PROPAGATOR = TraceContextTextMapPropagator()


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
        carrier = _headers(scope)
        parent = (
            _PROPAGATOR.extract(carrier) if "traceparent" in carrier else otel_context.Context()
        )
        method = scope["method"]
        span = telemetry.tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                sc.HTTP_METHOD: method,
                sc.URL_PATH: scope["path"],
            },
        )
        trace = RequestTrace(telemetry, span, parent)
        scope.setdefault("state", {})["trace"] = trace
        token = otel_context.attach(set_span_in_context(span, parent))
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
            otel_context.detach(token)
            route = self._route_of(scope)
            labels: dict[str, str | int] = {sc.HTTP_METHOD: method, sc.HTTP_STATUS: status}
            if route is not None:
                labels[sc.HTTP_ROUTE] = route
            if status >= 500:
                labels[sc.ERROR_TYPE] = str(status)
            telemetry.instruments.http_duration.record(time.perf_counter() - trace.started, labels)
            if telemetry.tracing:
                span.set_attributes(labels)
                if trace.overhead_ms is not None:
                    span.set_attribute(sc.OVERHEAD_MS, round(trace.overhead_ms, 3))
                if route is not None and not trace.named:
                    span.update_name(f"{method} {route}")
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
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


def _headers(scope: Scope) -> dict[str, str]:
    """Only the trace-context headers; nothing else of the request is looked at."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in (b"traceparent", b"tracestate"):
            out[name.decode("latin-1")] = value.decode("latin-1")
    return out
