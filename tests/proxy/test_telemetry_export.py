"""Telemetry leaving the process the way an SRE's collector and Prometheus receive it:
OTLP over HTTP and gRPC to real receivers on loopback, and a scrape of ``/metrics``.

The proxy builds its exporters itself here, from settings (no in-memory exporter).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from governance.pii import TextAnalyzer
from tests.proxy.conftest import running_proxy
from tests.support.otlp import (
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    OtlpReceiver,
    ReceivedSpan,
    scrape_prometheus,
)
from tests.upstream.faulty import FaultyUpstream


@pytest.fixture(params=["http/protobuf", "grpc"])
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[str, OtlpReceiver]]:
    server: OtlpReceiver = (
        OtlpHttpReceiver() if request.param == "http/protobuf" else OtlpGrpcReceiver()
    )
    with server:
        yield request.param, server


WANTED = {
    "gen_ai.client.token.usage",
    "gen_ai.client.operation.duration",
    "gen_ai.client.operation.time_to_first_chunk",
    "tollhouse.decisions",
    "tollhouse.audit.write.duration",
}


def _chat_pair(spans: list[ReceivedSpan]) -> bool:
    servers = [s for s in spans if s.kind == "SERVER" and s.name == "chat chat-default"]
    return any(c.kind == "CLIENT" and c.parent_span_id == s.span_id for s in servers for c in spans)


def test_spans_and_metrics_reach_an_otlp_receiver(
    database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
    receiver: tuple[str, OtlpReceiver],
) -> None:
    protocol, server = receiver
    telemetry: dict[str, Any] = {
        "service_name": "tollhouse-under-test",
        "traces": "otlp",
        "metrics": "otlp",
        "protocol": protocol,
        "otlp_endpoint": server.endpoint,
        "metric_export_interval_s": 0.2,
        "headers": {"x-tenant": "tollhouse-tests"},
        "compression": "gzip",
    }
    with running_proxy(database_url, upstreams, analyzer, telemetry=telemetry) as proxy:
        client = proxy.client()
        client.chat.completions.create(
            model="chat-default", messages=[{"role": "user", "content": "hi"}]
        )
        list(
            client.chat.completions.create(
                model="chat-default",
                messages=[{"role": "user", "content": "stream please"}],
                stream=True,
            )
        )
        spans = server.wait_for_spans(_chat_pair)
        points = server.wait_for_points(lambda ps: {p.metric for p in ps} >= WANTED)
    chat = next(s for s in spans if s.kind == "SERVER" and s.name == "chat chat-default")
    assert chat.resource["service.name"] == "tollhouse-under-test"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["tollhouse.decision"] == "allow"
    child = next(c for c in spans if c.parent_span_id == chat.span_id)
    assert child.trace_id == chat.trace_id
    assert child.attributes["gen_ai.request.model"] == "demo-llama"
    usage = [p for p in points if p.metric == "gen_ai.client.token.usage"]
    assert usage[0].kind == "histogram" and usage[0].unit == "{token}"
    assert {p.attributes["gen_ai.token.type"] for p in usage} == {"input", "output"}
    ttfc = [p for p in points if p.metric == "gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc[0].unit == "s" and ttfc[0].value >= 1
    exports = server.exports()
    assert {e.signal for e in exports} >= {"traces", "metrics"}
    assert all(e.headers.get("x-tenant") == "tollhouse-tests" for e in exports)
    if protocol == "http/protobuf":
        assert all(e.headers.get("content-encoding") == "gzip" for e in exports)


def test_prometheus_scrape(
    database_url: str, upstreams: tuple[FaultyUpstream, FaultyUpstream], analyzer: TextAnalyzer
) -> None:
    with running_proxy(database_url, upstreams, analyzer, telemetry={"prometheus": True}) as proxy:
        base = proxy.url.removesuffix("/v1")
        proxy.client().chat.completions.create(
            model="chat-default", messages=[{"role": "user", "content": "hi"}]
        )
        samples = scrape_prometheus(f"{base}/metrics")
    buckets = samples["gen_ai_client_token_usage_bucket"]
    types = {labels["gen_ai_token_type"] for labels, _ in buckets}
    assert types == {"input", "output"}
    assert any(
        labels.get("tollhouse_decision") == "allow" and value >= 1
        for labels, value in samples["tollhouse_decisions_total"]
    )
    durations = samples["gen_ai_client_operation_duration_seconds_count"]
    assert any(labels["gen_ai_request_model"] == "demo-llama" for labels, _ in durations)
    assert "tollhouse_audit_queue_depth" in {name.split("{")[0] for name in samples}


def test_metrics_route_is_absent_unless_enabled(
    database_url: str, upstreams: tuple[FaultyUpstream, FaultyUpstream], analyzer: TextAnalyzer
) -> None:
    with running_proxy(database_url, upstreams, analyzer) as proxy:
        base = proxy.url.removesuffix("/v1")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert caught.value.code == 404
