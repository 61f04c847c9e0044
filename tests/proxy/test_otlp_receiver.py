"""The loopback OTLP receivers and the Prometheus scraper, driven by the real SDK exporters."""

from __future__ import annotations

import gzip
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from tests.support.otlp import (
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    OtlpReceiver,
    ReceivedPoint,
    ReceivedSpan,
    labelled,
    scrape_prometheus,
)

SERVICE = "tollhouse-otlp-selftest"
ATTRIBUTES = {
    "text": "héllo",
    "count": 7,
    "ratio": 0.25,
    "flag": True,
    "texts": ["a", "b"],
    "counts": [1, -2],
    "ratios": [0.5, 1.5],
    "flags": [True, False],
}
BOUNDS = [0.1, 1.0, 10.0]
LATENCIES = [0.0625, 0.5, 0.75, 20.0]  # binary-exact, so the sum is too


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* setting from the environment reaches the exporters, and every test leaves
    no thread of its own running."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    before = set(threading.enumerate())
    yield
    leaked = [thread for thread in threading.enumerate() if thread not in before]
    for thread in leaked:
        thread.join(timeout=5)
    assert [thread.name for thread in leaked if thread.is_alive()] == []


@dataclass(frozen=True)
class Protocol:
    receiver: type[OtlpReceiver]
    span_exporter: Callable[[str], SpanExporter]
    metric_exporter: Callable[[str], MetricExporter]


PROTOCOLS = {
    "http": Protocol(
        OtlpHttpReceiver,
        lambda endpoint: HttpSpanExporter(endpoint=f"{endpoint}/v1/traces"),
        lambda endpoint: HttpMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
    ),
    "http-gzip": Protocol(
        OtlpHttpReceiver,
        lambda endpoint: HttpSpanExporter(
            endpoint=f"{endpoint}/v1/traces", compression=Compression.Gzip
        ),
        lambda endpoint: HttpMetricExporter(
            endpoint=f"{endpoint}/v1/metrics", compression=Compression.Gzip
        ),
    ),
    "grpc": Protocol(
        OtlpGrpcReceiver,
        lambda endpoint: GrpcSpanExporter(endpoint=endpoint, insecure=True),
        lambda endpoint: GrpcMetricExporter(endpoint=endpoint, insecure=True),
    ),
}


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request: pytest.FixtureRequest) -> Iterator[tuple[str, Protocol, OtlpReceiver]]:
    spec = PROTOCOLS[request.param]
    with spec.receiver() as receiver:
        yield request.param, spec, receiver


@contextmanager
def tracer_provider(exporter: SpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        yield provider
    finally:
        provider.shutdown()


@contextmanager
def meter_provider(exporter: MetricExporter) -> Iterator[MeterProvider]:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": SERVICE})
    )
    try:
        yield provider
    finally:
        provider.shutdown()


def emit_trace(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("tests.otlp")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes=ATTRIBUTES) as top:
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.add_event("retry", {"attempt": 2, "reason": "503"})
            child.set_status(Status(StatusCode.ERROR, "upstream unavailable"))
        top.set_status(Status(StatusCode.OK))
    assert provider.force_flush(timeout_millis=10_000)


def emit_metrics(provider: MeterProvider) -> None:
    meter = provider.get_meter("tests.otlp")
    requests = meter.create_counter("tollhouse.requests", unit="{request}")
    requests.add(2, {"route": "chat"})
    requests.add(3, {"route": "chat"})
    requests.add(1, {"route": "embeddings"})
    latency = meter.create_histogram(
        "tollhouse.latency", unit="s", explicit_bucket_boundaries_advisory=BOUNDS
    )
    for seconds in LATENCIES:
        latency.record(seconds, {"route": "chat"})
    assert provider.force_flush(timeout_millis=10_000)


def by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {span.name: span for span in spans}


def test_spans_arrive_decoded(protocol: tuple[str, Protocol, OtlpReceiver]) -> None:
    name, spec, receiver = protocol
    with tracer_provider(spec.span_exporter(receiver.endpoint)) as provider:
        emit_trace(provider)
        spans = by_name(
            receiver.wait_for_spans(lambda got: {"parent", "child"} <= by_name(got).keys())
        )

    parent, child = spans["parent"], spans["child"]
    assert (len(parent.trace_id), len(parent.span_id)) == (32, 16)
    assert set(parent.trace_id + parent.span_id) <= set("0123456789abcdef")
    assert parent.parent_span_id is None
    assert child.trace_id == parent.trace_id
    assert child.parent_span_id == parent.span_id
    assert (parent.kind, child.kind) == ("SERVER", "CLIENT")
    assert parent.attributes == ATTRIBUTES
    assert (parent.status_code, child.status_code) == ("OK", "ERROR")
    assert child.status_message == "upstream unavailable"
    assert child.events == [("retry", {"attempt": 2, "reason": "503"})]
    assert parent.start_ns <= child.start_ns <= child.end_ns <= parent.end_ns
    assert parent.resource["service.name"] == SERVICE
    assert parent.scope == "tests.otlp"
    assert receiver.requests["traces"] >= 1
    encodings = {export.headers.get("content-encoding") for export in receiver.exports()}
    if name == "http-gzip":
        assert encodings == {"gzip"}
    elif name == "http":
        assert encodings == {None}


def test_metrics_arrive_decoded(protocol: tuple[str, Protocol, OtlpReceiver]) -> None:
    name, spec, receiver = protocol

    def complete(points: list[ReceivedPoint]) -> bool:
        return {"tollhouse.requests", "tollhouse.latency"} <= {point.metric for point in points}

    with meter_provider(spec.metric_exporter(receiver.endpoint)) as provider:
        emit_metrics(provider)
        points = receiver.wait_for_points(complete)

    counts = {
        point.attributes["route"]: point.value
        for point in points
        if point.metric == "tollhouse.requests"
    }
    assert counts == {"chat": 5, "embeddings": 1}
    [histogram] = [point for point in points if point.metric == "tollhouse.latency"]
    assert (histogram.kind, histogram.unit) == ("histogram", "s")
    assert histogram.attributes == {"route": "chat"}
    assert histogram.value == len(LATENCIES)
    assert histogram.sum == sum(LATENCIES)
    assert histogram.explicit_bounds == BOUNDS
    assert histogram.bucket_counts == [1, 2, 0, 1]
    assert histogram.resource["service.name"] == SERVICE
    request_point = next(point for point in points if point.metric == "tollhouse.requests")
    assert (request_point.kind, request_point.unit, request_point.sum) == ("sum", "{request}", None)
    if name == "http-gzip":
        assert {export.headers.get("content-encoding") for export in receiver.exports()} == {"gzip"}


def test_wait_reports_what_arrived_on_timeout() -> None:
    with OtlpHttpReceiver() as receiver:
        with tracer_provider(HttpSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")) as tp:
            emit_trace(tp)
        with pytest.raises(AssertionError, match=r"(?s)got 2:.*'child'"):
            receiver.wait_for_spans(lambda got: len(got) > 2, timeout_s=0.1)


def post(url: str, body: bytes, content_type: str, encoding: str | None = None) -> int:
    headers = {"Content-Type": content_type} | ({"Content-Encoding": encoding} if encoding else {})
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.read() == b""  # an empty Export*ServiceResponse
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def test_http_receiver_counts_logs_and_rejects_what_it_cannot_read() -> None:
    logs = logs_service_pb2.ExportLogsServiceRequest().SerializeToString()
    protobuf = "application/x-protobuf"
    with OtlpHttpReceiver() as receiver:
        url = receiver.endpoint
        assert post(f"{url}/v1/logs", gzip.compress(logs), protobuf, "gzip") == 200
        assert post(f"{url}/v1/traces", b"{}", "application/json") == 415
        assert post(f"{url}/v1/traces", logs, protobuf, "br") == 415
        assert post(f"{url}/v1/traces", b"\xff\xff", protobuf) == 400
        assert post(f"{url}/v1/profiles", logs, protobuf) == 404
        assert receiver.requests == {"traces": 0, "metrics": 0, "logs": 1}


def test_scrape_prometheus() -> None:
    registry = CollectorRegistry()
    requests = Counter("tollhouse_requests", "Requests.", ["route"], registry=registry)
    requests.labels(route="chat").inc(3)
    tokens = Histogram(
        "gen_ai_client_token_usage", "Tokens.", ["type"], buckets=[10, 100], registry=registry
    )
    tokens.labels(type="input").observe(42)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        samples = scrape_prometheus(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert samples["tollhouse_requests_total"] == [({"route": "chat"}, 3.0)]
    assert samples["gen_ai_client_token_usage_bucket"] == [
        ({"type": "input", "le": "10.0"}, 0.0),
        ({"type": "input", "le": "100.0"}, 1.0),
        ({"type": "input", "le": "+Inf"}, 1.0),
    ]
    assert samples["gen_ai_client_token_usage_sum"] == [({"type": "input"}, 42.0)]
    assert labelled(samples["gen_ai_client_token_usage_bucket"], le="+Inf") == [
        ({"type": "input", "le": "+Inf"}, 1.0)
    ]
