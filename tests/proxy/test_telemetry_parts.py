"""The telemetry engine's parts on their own: trace context and sampling, the in-place
metric instruments, the OTLP encoder (decoded with the official protobuf classes), the
batching exporter and the Prometheus rendering."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from prometheus_client.parser import text_string_to_metric_families

from governance.observability import Scrubber
from proxy.telemetry.export import ExportError, OtlpWriter, SpanBatcher, SpanScrubber
from proxy.telemetry.metrics import Meter, MetricData
from proxy.telemetry.otlp import Encoder
from proxy.telemetry.prometheus import render
from proxy.telemetry.spans import (
    CLIENT,
    ERROR,
    OK,
    SERVER,
    Sampler,
    Span,
    SpanContext,
    Tracer,
    parse_traceparent,
)
from tests.support.otlp import MemoryTransport, decode_points, decode_spans

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


# -- trace context ------------------------------------------------------------------------


def test_traceparent_round_trip() -> None:
    context = parse_traceparent(f"00-{TRACE}-{PARENT}-01", "vendor=blue")
    assert context == SpanContext(int(TRACE, 16), int(PARENT, 16), True, "vendor=blue")
    assert context.traceparent() == f"00-{TRACE}-{PARENT}-01"
    assert context.headers() == {
        "traceparent": f"00-{TRACE}-{PARENT}-01",
        "tracestate": "vendor=blue",
    }
    unsampled = parse_traceparent(f"00-{TRACE}-{PARENT}-00")
    assert unsampled is not None and not unsampled.sampled
    assert unsampled.headers() == {"traceparent": f"00-{TRACE}-{PARENT}-00"}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"ff-{TRACE}-{PARENT}-01",  # version ff is forbidden
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-0x",
    ],
)
def test_malformed_traceparent_starts_a_new_trace(value: str) -> None:
    assert parse_traceparent(value) is None


def test_future_versions_are_read_for_what_version_00_defines() -> None:
    context = parse_traceparent(f"01-{TRACE}-{PARENT}-01-what-comes-later")
    assert context is not None and context.trace_id == int(TRACE, 16)


def test_spans_nest_and_end_once() -> None:
    ended: list[Span] = []
    tracer = Tracer(ended.append, rng=random.Random(7))
    caller = parse_traceparent(f"00-{TRACE}-{PARENT}-01", "k=v")
    server = tracer.start_span("POST", SERVER, caller, {"a": 1})
    client = tracer.start_span("chat m", CLIENT, server.context)
    assert (server.trace_id, server.parent_id, server.tracestate) == (
        int(TRACE, 16),
        int(PARENT, 16),
        "k=v",
    )
    assert client.trace_id == server.trace_id and client.parent_id == server.span_id
    assert client.tracestate == "k=v"
    client.end()
    client.end()
    server.end(server.start_ns + 5)
    assert ended == [client, server]
    assert server.end_ns == server.start_ns + 5
    root = tracer.start_span("GET", SERVER)
    assert root.parent_id is None and root.trace_id not in (0, server.trace_id)


def test_status_description_goes_with_error_only() -> None:
    span = Tracer(lambda _: None).start_span("x", SERVER)
    span.set_status(OK, "ignored")
    assert (span.status, span.status_message) == (OK, "")
    span.set_status(ERROR, "upstream said no")
    assert (span.status, span.status_message) == (ERROR, "upstream said no")


def test_parent_based_sampling_follows_the_caller() -> None:
    ended: list[Span] = []
    tracer = Tracer(ended.append, Sampler("parentbased_always_on"))
    unsampled = parse_traceparent(f"00-{TRACE}-{PARENT}-00")
    span = tracer.start_span("POST", SERVER, unsampled)
    child = tracer.start_span("chat m", CLIENT, span.context)
    assert not span.recording and not child.recording
    assert child.context.traceparent().endswith("-00")  # the flag travels on
    child.end()
    span.end()
    assert ended == []
    assert tracer.start_span("POST", SERVER).recording  # a new trace is sampled


def test_trace_id_ratio_keeps_the_same_share_for_every_service() -> None:
    rng = random.Random(3)
    ids = [rng.getrandbits(128) for _ in range(20_000)]
    quarter = Sampler("traceidratio", 0.25)
    kept = [i for i in ids if quarter.sampled(i, None)]
    assert 0.23 < len(kept) / len(ids) < 0.27
    again = Sampler("parentbased_traceidratio", 0.25)
    assert [i for i in ids if again.sampled(i, None)] == kept  # same ids, same decision
    assert not any(Sampler("traceidratio", 0.0).sampled(i, None) for i in ids[:100])
    assert all(Sampler("traceidratio", 1.0).sampled(i, None) for i in ids[:100])
    assert not Sampler("always_off").sampled(ids[0], None)


def test_a_tracer_without_a_sink_records_nothing_but_keeps_the_callers_flag() -> None:
    tracer = Tracer()
    assert not tracer.enabled
    caller = parse_traceparent(f"00-{TRACE}-{PARENT}-01")
    span = tracer.start_span("POST", SERVER, caller)
    assert not span.recording and span.context.sampled


# -- metrics --------------------------------------------------------------------------------


def test_histogram_buckets_follow_the_le_rule() -> None:
    meter = Meter()
    histogram = meter.histogram("h", "s", "d", (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.record(value, {"route": "/v1/chat/completions"})
    (data,) = meter.collect()
    (point,) = data.points
    assert point.counts == (2, 2, 1)  # 0.1 and 1.0 fall in the buckets they bound
    assert (point.count, point.value, point.minimum, point.maximum) == (5, 8.65, 0.05, 7.0)


def test_counters_sum_per_label_set_whatever_the_order() -> None:
    meter = Meter()
    counter = meter.counter("c", "{request}", "d")
    counter.add(1, {"a": "x", "b": 1})
    counter.add(2, {"b": 1, "a": "x"})
    counter.add(5, {"a": "y"})
    (data,) = meter.collect()
    assert {p.labels: p.value for p in data.points} == {
        (("a", "x"), ("b", 1)): 3,
        (("a", "y"),): 5,
    }
    assert data.monotonic


def test_gauges_keep_the_last_value_and_observables_skip_when_unknown() -> None:
    meter = Meter()
    gauge = meter.gauge("g", "1", "d")
    gauge.set(0.2, {"budget": "daily"})
    gauge.set(0.7, {"budget": "daily"})
    depth: list[int] = []
    meter.observable_gauge("q", "{record}", "d", lambda: depth[-1] if depth else None)
    assert [(d.name, [p.value for p in d.points]) for d in meter.collect()] == [("g", [0.7])]
    depth.append(4)
    assert [d.name for d in meter.collect()] == ["g", "q"]


def test_instrument_definitions_are_checked() -> None:
    meter = Meter()
    meter.counter("c", "1", "d")
    with pytest.raises(ValueError, match="already defined"):
        meter.gauge("c", "1", "d")
    with pytest.raises(ValueError, match="strictly increasing"):
        meter.histogram("h", "s", "d", (1.0, 1.0))


# -- the OTLP encoder --------------------------------------------------------------------------


def _traces(payload: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(payload)
    return request


def test_spans_decode_with_the_official_classes() -> None:
    ended: list[Span] = []
    tracer = Tracer(ended.append)
    caller = parse_traceparent(f"00-{TRACE}-{PARENT}-01", "k=v")
    server = tracer.start_span("chat alias", SERVER, caller)
    server.set_attributes(
        {
            "s": "é ünïcode",
            "i": 42,
            "neg": -5,
            "f": 0.25,
            "b": False,
            "list": ["stop", "length"],
            "ints": [1, 2],
            "huge": 2**70,
        }
    )
    client = tracer.start_span("chat m", CLIENT, server.context)
    client.set_status(ERROR, "refused")
    client.end()
    server.end()
    encoder = Encoder({"service.name": "svc", "deployment.environment": "test"}, "scope", "1.2")
    request = _traces(encoder.spans(ended[:1]) + encoder.spans(ended[1:]))  # two batches
    spans = {s.kind: s for s in decode_spans(request)}
    got = spans["SERVER"]
    assert got.name == "chat alias"
    assert (got.trace_id, got.parent_span_id) == (TRACE, PARENT)
    assert got.span_id == f"{server.span_id:016x}"
    assert got.attributes == {
        "s": "é ünïcode",
        "i": 42,
        "neg": -5,
        "f": 0.25,
        "b": False,
        "list": ["stop", "length"],
        "ints": [1, 2],
        "huge": float(2**70),
    }
    assert got.resource == {"service.name": "svc", "deployment.environment": "test"}
    assert got.scope == "scope"
    assert (got.start_ns, got.end_ns) == (server.start_ns, server.end_ns)
    assert got.status_code == "UNSET"
    assert request.resource_spans[0].scope_spans[0].scope.version == "1.2"
    assert request.resource_spans[0].scope_spans[0].spans[0].trace_state == "k=v"
    failed = spans["CLIENT"]
    assert (failed.status_code, failed.status_message) == ("ERROR", "refused")
    assert failed.parent_span_id == got.span_id


def test_repeated_strings_encode_the_same_after_the_cache_fills() -> None:
    encoder = Encoder({}, "s", "1")
    tracer = Tracer(lambda _: None)
    spans = []
    for number in range(5000):  # more distinct values than the cache keeps
        span = tracer.start_span("x", SERVER, attributes={"app": "suite", "id": f"req_{number}"})
        span.end_ns = span.start_ns + 1
        spans.append(span)
    decoded = decode_spans(_traces(encoder.spans(spans)))
    assert [s.attributes for s in decoded] == [
        {"app": "suite", "id": f"req_{n}"} for n in range(5000)
    ]


def test_metrics_decode_with_the_official_classes() -> None:
    meter = Meter()
    meter.histogram("latency", "s", "how long", (0.1, 1.0)).record(0.5, {"route": "/v1/x"})
    counter = meter.counter("tokens", "{token}", "how many")
    counter.add(3, {"type": "input"})
    meter.counter("spend", "{currency_unit}", "cost").add(0.125, {"app": "a"})
    meter.gauge("budget", "1", "share").set(0.5, {"budget": "daily"})
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    request.ParseFromString(
        Encoder({"service.name": "svc"}, "s", "1").metrics(meter.collect(), 10, 20)
    )
    points = {p.metric: p for p in decode_points(request)}
    latency = points["latency"]
    assert (latency.kind, latency.unit, latency.attributes) == (
        "histogram",
        "s",
        {"route": "/v1/x"},
    )
    assert (latency.value, latency.sum, latency.bucket_counts) == (1, 0.5, [0, 1, 0])
    assert latency.explicit_bounds == [0.1, 1.0]
    assert (points["tokens"].kind, points["tokens"].value) == ("sum", 3)
    assert points["spend"].value == 0.125
    assert (points["budget"].kind, points["budget"].value) == ("gauge", 0.5)
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    by_name = {m.name: m for m in metrics}
    assert by_name["tokens"].sum.is_monotonic
    assert by_name["tokens"].sum.aggregation_temporality == 2  # cumulative
    assert by_name["latency"].histogram.aggregation_temporality == 2
    histogram_point = by_name["latency"].histogram.data_points[0]
    assert (histogram_point.start_time_unix_nano, histogram_point.time_unix_nano) == (10, 20)
    assert (histogram_point.min, histogram_point.max) == (0.5, 0.5)
    assert by_name["latency"].description == "how long"


# -- exporting ----------------------------------------------------------------------------------


class FlakyTransport(MemoryTransport):
    """Fails the first ``failures`` sends with a retryable (or final) error."""

    def __init__(self, failures: int, retryable: bool = True) -> None:
        super().__init__()
        self.failures = failures
        self.retryable = retryable
        self.attempts = 0

    async def send(self, signal: str, payload: bytes) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ExportError("collector restarting", retryable=self.retryable)
        await super().send(signal, payload)


def _ended(count: int, attributes: dict[str, object] | None = None) -> list[Span]:
    spans: list[Span] = []
    tracer = Tracer(spans.append)
    for _ in range(count):
        tracer.start_span("x", SERVER, attributes=dict(attributes or {})).end()
    return spans


def test_the_writer_retries_what_may_pass_later() -> None:
    transport = FlakyTransport(failures=2)
    writer = OtlpWriter(Encoder({}, "s", "1"), transport, retries=3, backoff_s=0.001)
    asyncio.run(writer.spans(_ended(3)))
    assert transport.attempts == 3 and len(transport.spans()) == 3


def test_the_writer_gives_up_on_final_errors() -> None:
    transport = FlakyTransport(failures=1, retryable=False)
    writer = OtlpWriter(Encoder({}, "s", "1"), transport, retries=3, backoff_s=0.001)
    with pytest.raises(ExportError):
        asyncio.run(writer.spans(_ended(1)))
    assert transport.attempts == 1


def test_the_batcher_bounds_its_queue_and_counts_what_it_drops() -> None:
    transport = MemoryTransport()

    async def scenario() -> SpanBatcher:
        batcher = SpanBatcher(
            OtlpWriter(Encoder({}, "s", "1"), transport), Scrubber(), max_queue=10, batch=4
        )
        for span in _ended(15):  # not started: nothing drains the queue
            batcher.enqueue(span)
        await batcher.flush()
        return batcher

    batcher = asyncio.run(scenario())
    assert (batcher.exported, batcher.dropped) == (10, 5)
    assert len(transport.spans()) == 10
    assert transport.requests["traces"] == 3  # batches of 4, 4 and 2


def test_the_batcher_drops_a_batch_the_collector_refuses_and_goes_on() -> None:
    transport = FlakyTransport(failures=1, retryable=False)

    async def scenario() -> SpanBatcher:
        batcher = SpanBatcher(OtlpWriter(Encoder({}, "s", "1"), transport), Scrubber(), batch=2)
        batcher.start()
        for span in _ended(4):
            batcher.enqueue(span)
        await batcher.close()
        return batcher

    batcher = asyncio.run(scenario())
    assert (batcher.exported, batcher.dropped) == (2, 2)


def test_a_full_batch_leaves_before_the_next_tick() -> None:
    transport = MemoryTransport()

    async def scenario() -> None:
        batcher = SpanBatcher(
            OtlpWriter(Encoder({}, "s", "1"), transport), Scrubber(), batch=3, delay_s=3600
        )
        batcher.start()
        for span in _ended(3):
            batcher.enqueue(span)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if transport.spans():
                break
        await batcher.close()

    asyncio.run(scenario())
    assert len(transport.spans()) == 3


def test_span_scrubber_cleans_unknown_strings_and_leaves_safe_ones() -> None:
    scrub = SpanScrubber(Scrubber(["sk-upstream-secret-value"]))
    email = "maria.jansen@example.com"
    (span,) = _ended(
        1,
        {
            "url.path": f"/v1/chat/{email}",
            "gen_ai.response.finish_reasons": ["stop", email],
            "tollhouse.app": "suite",
            "gen_ai.usage.input_tokens": 5,
        },
    )
    span.set_status(ERROR, "upstream echoed sk-upstream-secret-value")
    for _ in range(2):  # the second pass reads the kept results
        scrub(span)
        assert email not in str(span.attributes)
        assert span.attributes["tollhouse.app"] == "suite"
        assert span.attributes["gen_ai.usage.input_tokens"] == 5
        assert span.attributes["url.path"] == "/v1/chat/[EMAIL_ADDRESS]"
        assert "sk-upstream" not in span.status_message


# -- Prometheus ------------------------------------------------------------------------------------


def _families(data: Sequence[MetricData]) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    text = render(data).decode()
    return {
        family.name: [(s.name, dict(s.labels), s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_prometheus_names_units_and_cumulative_buckets() -> None:
    meter = Meter()
    histogram = meter.histogram("gen_ai.client.operation.duration", "s", "d", (0.1, 1.0))
    for value in (0.05, 0.5, 5.0):
        histogram.record(value, {"gen_ai.request.model": "m"})
    meter.counter("tollhouse.decisions", "{request}", "d").add(2, {"tollhouse.decision": "allow"})
    meter.gauge("tollhouse.budget.utilization", "1", "d").set(0.25)
    families = _families(meter.collect())
    samples = families["gen_ai_client_operation_duration_seconds"]
    buckets = {labels["le"]: value for name, labels, value in samples if name.endswith("_bucket")}
    assert buckets == {"0.1": 1, "1.0": 2, "+Inf": 3}
    assert (
        "gen_ai_client_operation_duration_seconds_count",
        {"gen_ai_request_model": "m"},
        3,
    ) in samples
    assert families["tollhouse_decisions"] == [
        ("tollhouse_decisions_total", {"tollhouse_decision": "allow"}, 2)
    ]
    assert families["tollhouse_budget_utilization_ratio"][0][2] == 0.25
