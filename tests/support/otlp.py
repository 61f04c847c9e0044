"""Real OpenTelemetry receivers on loopback, for tests that check what the proxy exports.

``OtlpHttpReceiver`` (OTLP/HTTP, protobuf) and ``OtlpGrpcReceiver`` (OTLP/gRPC) decode every
export request into plain frozen records (``ReceivedSpan``, ``ReceivedPoint``) kept in an
``OtlpStore``; ``scrape_prometheus`` reads a Prometheus text endpoint into samples.
"""

from __future__ import annotations

import gzip
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from prometheus_client.parser import text_string_to_metric_families

Signal = Literal["traces", "metrics", "logs"]
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    kind: str  # "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER" or "UNSPECIFIED"
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None  # 16 hex digits; None for a root span
    attributes: dict[str, Any]
    status_code: str  # "UNSET", "OK" or "ERROR"
    status_message: str
    resource: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    start_ns: int
    end_ns: int
    scope: str  # the instrumentation scope's name (the tracer's name)


@dataclass(frozen=True)
class ReceivedPoint:
    metric: str
    unit: str
    kind: str  # "sum", "gauge", "histogram", "exponential_histogram" or "summary"
    attributes: dict[str, Any]
    value: int | float  # sum and gauge: the value; the histogram kinds and summary: the count
    sum: float | None  # the histogram kinds and summary: the sum, when sent
    bucket_counts: list[int]  # histogram only
    explicit_bounds: list[float]  # histogram only
    resource: dict[str, Any]
    scope: str  # the instrumentation scope's name (the meter's name)
    time_ns: int = 0  # when the value was collected


_T = TypeVar("_T", ReceivedSpan, ReceivedPoint)


@dataclass(frozen=True)
class ReceivedExport:
    """One export request as it arrived: which signal, over which protocol, with which
    headers (names lower-cased; for gRPC the invocation metadata)."""

    signal: Signal
    protocol: Literal["http", "grpc", "memory"]
    headers: dict[str, str]


def any_value(value: common_pb2.AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue``: arrays become lists, kvlists dicts."""
    match value.WhichOneof("value"):
        case None:
            return None
        case "string_value":
            return value.string_value
        case "bool_value":
            return value.bool_value
        case "int_value":
            return value.int_value
        case "double_value":
            return value.double_value
        case "bytes_value":
            return value.bytes_value
        case "array_value":
            return [any_value(item) for item in value.array_value.values]
        case "kvlist_value":
            return key_values(value.kvlist_value.values)
        case other:
            raise ValueError(f"AnyValue field {other} has no meaning outside profiles")


def key_values(items: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {item.key: any_value(item.value) for item in items}


def _enum_name(enum: Any, number: int, prefix: str) -> str:
    return str(enum.Name(number)).removeprefix(prefix)


def decode_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = key_values(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(_span(span, resource, scope_spans.scope.name))
    return spans


def _span(span: trace_pb2.Span, resource: dict[str, Any], scope: str) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        kind=_enum_name(trace_pb2.Span.SpanKind, span.kind, "SPAN_KIND_"),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        attributes=key_values(span.attributes),
        status_code=_enum_name(trace_pb2.Status.StatusCode, span.status.code, "STATUS_CODE_"),
        status_message=span.status.message,
        resource=resource,
        events=[(event.name, key_values(event.attributes)) for event in span.events],
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        scope=scope,
    )


def decode_points(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[ReceivedPoint]:
    points = []
    for resource_metrics in request.resource_metrics:
        resource = key_values(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                for point in getattr(metric, kind).data_points:
                    common = {
                        "metric": metric.name,
                        "unit": metric.unit,
                        "kind": kind,
                        "attributes": key_values(point.attributes),
                        "resource": resource,
                        "scope": scope_metrics.scope.name,
                        "time_ns": point.time_unix_nano,
                    }
                    points.append(ReceivedPoint(**common, **_point_values(kind, point)))
    return points


def _point_values(kind: str, point: Any) -> dict[str, Any]:
    if kind in ("sum", "gauge"):
        number = point.WhichOneof("value")
        return {
            "value": getattr(point, number) if number else 0,
            "sum": None,
            "bucket_counts": [],
            "explicit_bounds": [],
        }
    has_sum = kind == "summary" or point.HasField("sum")
    return {
        "value": point.count,
        "sum": point.sum if has_sum else None,
        "bucket_counts": list(point.bucket_counts) if kind == "histogram" else [],
        "explicit_bounds": list(point.explicit_bounds) if kind == "histogram" else [],
    }


class OtlpStore:
    """What the receivers fill: decoded spans and points and a log of export requests.
    Safe to read from the test thread while the servers' threads write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._points: list[ReceivedPoint] = []
        self._exports: list[ReceivedExport] = []

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def points(self) -> list[ReceivedPoint]:
        with self._lock:
            return list(self._points)

    def exports(self) -> list[ReceivedExport]:
        with self._lock:
            return list(self._exports)

    @property
    def requests(self) -> dict[Signal, int]:
        """How many export requests arrived, by signal (every signal present, 0 if none)."""
        with self._lock:
            counts = dict.fromkeys(SIGNALS, 0)
            for export in self._exports:
                counts[export.signal] += 1
            return counts

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self._points.clear()
            self._exports.clear()

    def record(self, export: ReceivedExport, request: Message) -> None:
        """Decode one export request and keep what it carried."""
        spans: list[ReceivedSpan] = []
        points: list[ReceivedPoint] = []
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            spans = decode_spans(request)
        elif isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            points = decode_points(request)
        with self._lock:
            self._exports.append(export)
            self._spans.extend(spans)
            self._points.extend(points)

    def wait_for_spans(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 10.0
    ) -> list[ReceivedSpan]:
        """The spans received so far, once ``predicate`` accepts them; AssertionError listing
        what did arrive if it never does within ``timeout_s``."""
        return self._wait(self.spans, predicate, timeout_s, "spans")

    def wait_for_points(
        self, predicate: Callable[[list[ReceivedPoint]], bool], timeout_s: float = 10.0
    ) -> list[ReceivedPoint]:
        """The points received so far, once ``predicate`` accepts them (see wait_for_spans)."""
        return self._wait(self.points, predicate, timeout_s, "points")

    def _wait(
        self,
        read: Callable[[], list[_T]],
        predicate: Callable[[list[_T]], bool],
        timeout_s: float,
        what: str,
    ) -> list[_T]:
        deadline = time.monotonic() + timeout_s
        while True:
            got = read()
            if predicate(got):
                return got
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no matching {what} after {timeout_s}s (requests: {self.requests}); "
                    f"got {len(got)}:\n" + "\n".join(_summary(item) for item in got)
                )
            time.sleep(0.01)


def _summary(item: ReceivedSpan | ReceivedPoint) -> str:
    if isinstance(item, ReceivedSpan):
        return f"  span {item.name!r} {item.kind} {item.status_code} {item.attributes}"
    return f"  point {item.metric!r} {item.kind} {item.attributes} value={item.value}"


def latest(points: Iterable[ReceivedPoint]) -> list[ReceivedPoint]:
    """Of cumulative points exported again and again, the newest per metric and series."""
    newest: dict[tuple[str, str], ReceivedPoint] = {}
    for point in points:
        key = (point.metric, repr(sorted(point.attributes.items())))
        if key not in newest or point.time_ns >= newest[key].time_ns:
            newest[key] = point
    return list(newest.values())


class MemoryTransport(OtlpStore):
    """An OTLP transport for the proxy (``build_telemetry(..., transport=)``) that keeps
    what it is sent, decoded with the official protobuf classes, instead of sending it."""

    async def send(self, signal: str, payload: bytes) -> None:
        request: Message
        if signal == "traces":
            request = trace_service_pb2.ExportTraceServiceRequest()
        else:
            request = metrics_service_pb2.ExportMetricsServiceRequest()
        request.ParseFromString(payload)
        self.record(
            ReceivedExport("traces" if signal == "traces" else "metrics", "memory", {}), request
        )

    async def close(self) -> None:
        pass


class OtlpReceiver(OtlpStore):
    """An OtlpStore behind a server: ``start()``/``stop()`` or ``with``."""

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# path -> (signal, request message, response message)
_HTTP_ROUTES: dict[str, tuple[Signal, type[Message], type[Message]]] = {
    "/v1/traces": (
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/metrics": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/logs": (
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
}
_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda body: body,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


class _HttpServer(ThreadingHTTPServer):
    def __init__(self, store: OtlpStore) -> None:
        self.store = store
        super().__init__(("127.0.0.1", 0), _OtlpHandler)


class _OtlpHandler(BaseHTTPRequestHandler):
    """OTLP/HTTP with binary protobuf bodies, plain or gzip/deflate compressed.
    HTTP/1.0: one request per connection, so stop() leaves no handler thread behind."""

    server: _HttpServer

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None:
            self._reply(411, b"Content-Length required", "text/plain")
            return
        body = self.rfile.read(int(length))
        route = _HTTP_ROUTES.get(self.path.split("?", 1)[0])
        if route is None:
            self._reply(404, b"not an OTLP path", "text/plain")
            return
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if content_type != "application/x-protobuf" or encoding not in _DECOMPRESS:
            self._reply(415, b"only application/x-protobuf, plain or gzip/deflate", "text/plain")
            return
        signal, request_type, response_type = route
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            request = request_type.FromString(_DECOMPRESS[encoding](body))
            self.server.store.record(ReceivedExport(signal, "http", headers), request)
        except (OSError, EOFError, zlib.error, DecodeError, ValueError) as exc:
            self._reply(400, f"undecodable body: {exc}".encode(), "text/plain")
            return
        self._reply(200, response_type().SerializeToString(), "application/x-protobuf")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class OtlpHttpReceiver(OtlpReceiver):
    """An OTLP/HTTP collector on 127.0.0.1: POST /v1/traces, /v1/metrics, /v1/logs.
    Point an HTTP exporter at ``endpoint + "/v1/traces"`` (the exporter's ``endpoint``
    argument is the full signal URL) or set OTEL_EXPORTER_OTLP_ENDPOINT to ``endpoint``."""

    def __init__(self) -> None:
        super().__init__()
        self._server = _HttpServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() may wait
            name="otlp-http-receiver",
            daemon=True,
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


class _Service:
    def __init__(self, store: OtlpStore, signal: Signal, response_type: type[Message]) -> None:
        self._store = store
        self._signal = signal
        self._response_type = response_type

    def Export(self, request: Message, context: grpc.ServicerContext) -> Message:
        metadata = {
            item.key: item.value if isinstance(item.value, str) else item.value.hex()
            for item in context.invocation_metadata()
        }
        self._store.record(ReceivedExport(self._signal, "grpc", metadata), request)
        return self._response_type()


class _TraceService(_Service, trace_service_pb2_grpc.TraceServiceServicer):
    pass


class _MetricsService(_Service, metrics_service_pb2_grpc.MetricsServiceServicer):
    pass


class _LogsService(_Service, logs_service_pb2_grpc.LogsServiceServicer):
    pass


class OtlpGrpcReceiver(OtlpReceiver):
    """An OTLP/gRPC collector on 127.0.0.1 (plaintext): the trace, metrics and logs services.
    Point a gRPC exporter at ``endpoint`` with ``insecure=True``."""

    def __init__(self) -> None:
        super().__init__()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc")
        self._server = grpc.server(self._executor)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(self, "traces", trace_service_pb2.ExportTraceServiceResponse),
            self._server,
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsService(self, "metrics", metrics_service_pb2.ExportMetricsServiceResponse),
            self._server,
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            _LogsService(self, "logs", logs_service_pb2.ExportLogsServiceResponse),
            self._server,
        )
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        self._started = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> Self:
        self._server.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.stop(grace=None).wait()
            self._started = False
        self._executor.shutdown(wait=True)


def scrape_prometheus(
    url: str, timeout_s: float = 5.0
) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET a Prometheus text-format endpoint; samples by sample name (``x_total``,
    ``x_bucket``, ``x_count``, ...) as ``(labels, value)`` in the order served."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain; version=0.0.4"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        text = response.read().decode("utf-8")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def labelled(
    samples: Sequence[tuple[dict[str, str], float]], **labels: str
) -> list[tuple[dict[str, str], float]]:
    """The samples whose labels include all of ``labels``."""
    return [
        (have, value)
        for have, value in samples
        if all(have.get(key) == want for key, want in labels.items())
    ]
