"""Traces and metrics of real requests through the proxy, read from in-memory exporters.

The proxy runs on loopback in front of two fake upstreams (alpha internal, beta
external) under a policy that pseudonymises e-mail addresses for external upstreams,
blocks a keyword and has a budget. Each test checks the span tree and the GenAI and
governance attribute names of one kind of request.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

from governance.config import Settings
from governance.pii import TextAnalyzer
from proxy.app import scrubber_for
from proxy.telemetry import Telemetry, build_telemetry
from tests.proxy.conftest import SUITE_POLICY, Harness, running_proxy
from tests.support.otlp import MemoryTransport, ReceivedPoint, ReceivedSpan, latest
from tests.upstream.faulty import Fault, FaultyUpstream

EMAIL = "maria.jansen@example.com"

TELEMETRY_POLICY: dict[str, Any] = {
    "name": "telemetry-policy",
    "defaults": {
        "audit": {"content": "redacted"},
        "content": {"secrets": "off", "blocked_keywords": ["nightjar"]},
        "pii": {
            "default": {"internal": "allow", "external": "mask"},
            "entities": {"EMAIL_ADDRESS": {"internal": "allow", "external": "pseudonymize"}},
        },
        "budgets": [{"name": "app-daily", "scope": "app", "period": "daily", "cost": "1000"}],
    },
    "overrides": SUITE_POLICY["overrides"][1:],  # quiet may only use chat-default
}


def _config(alpha: FaultyUpstream, beta: FaultyUpstream) -> dict[str, Any]:
    common = {"kind": "openai_compatible", "timeout_s": 2.0, "connect_timeout_s": 1.0}
    return {
        "upstreams": [
            {"name": "alpha", "base_url": alpha.url, "destination": "internal", **common},
            {
                "name": "beta",
                "base_url": beta.url,
                "destination": "external",
                "provider": "openai",
                **common,
            },
        ],
        "models": [
            {"name": "chat-default", "deployments": [{"upstream": "alpha", "model": "demo-llama"}]},
            {"name": "chat-external", "deployments": [{"upstream": "beta", "model": "demo-llama"}]},
            {
                "name": "chat-fallback",
                "deployments": [
                    {"upstream": "alpha", "model": "demo-large", "weight": 1},
                    {"upstream": "beta", "model": "demo-large", "weight": 0},
                ],
            },
            {
                "name": "embed-default",
                "deployments": [{"upstream": "alpha", "model": "demo-embed"}],
            },
        ],
    }


class Observed:
    def __init__(self, harness: Harness, store: MemoryTransport, telemetry: Telemetry):
        self.harness = harness
        self._store = store
        self.telemetry = telemetry

    def spans_of(self, request_id: str) -> list[ReceivedSpan]:
        """Every span of the trace the request's server span belongs to. A server span
        ends just after the last byte went out, so a client may get there first: wait."""
        deadline = time.monotonic() + 5
        while True:
            self.telemetry.flush()
            finished = self._store.spans()
            server = [s for s in finished if s.attributes.get("tollhouse.request.id") == request_id]
            if server or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert len(server) == 1, [s.name for s in finished]
        return [s for s in finished if s.trace_id == server[0].trace_id]

    def points(self, name: str) -> list[tuple[dict[str, Any], ReceivedPoint]]:
        """The metric's series as last collected (cumulative since the proxy started)."""
        self.telemetry.flush()
        return [(p.attributes, p) for p in latest(self._store.points()) if p.metric == name]


@pytest.fixture(scope="module")
def observed(
    database_url: str, upstreams: tuple[FaultyUpstream, FaultyUpstream], analyzer: TextAnalyzer
) -> Iterator[Observed]:
    store = MemoryTransport()
    holder: dict[str, Telemetry] = {}

    def telemetry(settings: Settings) -> Telemetry:
        holder["t"] = build_telemetry(settings, scrubber_for(settings), transport=store)
        return holder["t"]

    config = _config(*upstreams)
    exported = {"traces": "otlp", "metrics": "otlp", "metric_export_interval_s": 3600}
    with running_proxy(
        database_url,
        upstreams,
        analyzer,
        policy=TELEMETRY_POLICY,
        observe=telemetry,
        telemetry=exported,
        **config,
    ) as harness:
        yield Observed(harness, store, holder["t"])


@pytest.fixture
def obs(observed: Observed) -> Observed:
    observed.harness.alpha.reset()
    observed.harness.beta.reset()
    observed.telemetry.capture_content = False
    return observed


def _tree(spans: list[ReceivedSpan]) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    servers = [s for s in spans if s.kind == "SERVER"]
    assert len(servers) == 1
    server = servers[0]
    clients = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.start_ns)
    for client in clients:
        assert client.parent_span_id == server.span_id
    return server, clients


GENAI_SERVER = {
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
}
GOVERNANCE = {
    "tollhouse.policy.name",
    "tollhouse.policy.version",
    "tollhouse.decision",
    "tollhouse.budget.state",
    "tollhouse.request.id",
}
CLIENT_NAMES = {
    "gen_ai.response.id",
    "gen_ai.response.model",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "server.address",
    "server.port",
}


def _traceparent(headers: dict[str, str]) -> tuple[str, str]:
    value = {k.lower(): v for k, v in headers.items()}["traceparent"]
    version, trace_id, span_id, _flags = value.split("-")
    assert version == "00"
    return trace_id, span_id


def test_chat_span_tree_attributes_and_trace_propagation(obs: Observed) -> None:
    harness = obs.harness
    caller_trace = uuid.uuid4().hex
    caller_span = uuid.uuid4().hex[:16]
    raw = harness.client().chat.completions.with_raw_response.create(
        model="chat-external",
        messages=[{"role": "user", "content": f"Write to {EMAIL} about the launch."}],
        max_tokens=20,
        temperature=0.2,
        extra_headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
    )
    answer = raw.parse()
    request_id = raw.headers["x-request-id"]
    assert float(raw.headers["x-tollhouse-overhead-ms"]) >= 0
    server, clients = _tree(obs.spans_of(request_id))

    # The trace continues the caller's, and runs on into the upstream.
    assert server.trace_id == caller_trace
    assert server.parent_span_id == caller_span
    assert len(clients) == 1
    client = clients[0]
    sent_trace, sent_parent = _traceparent(harness.beta.received[-1]["headers"])
    assert sent_trace == caller_trace
    assert sent_parent == client.span_id

    assert server.name == "chat chat-external"
    attrs = dict(server.attributes or {})
    assert attrs.keys() >= GENAI_SERVER | GOVERNANCE
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "chat-external"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.max_tokens"] == 20
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert "gen_ai.response.id" not in attrs  # the answer's identity is on the client span
    assert answer.usage is not None
    assert attrs["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert attrs["tollhouse.policy.name"] == "telemetry-policy"
    assert isinstance(attrs["tollhouse.policy.version"], int)
    assert attrs["tollhouse.decision"] == "allow"
    assert attrs["tollhouse.destination"] == "external"
    assert attrs["tollhouse.pii.email_address"] == 1
    assert attrs["tollhouse.budget.state"] == "ok"
    assert 0 <= attrs["tollhouse.budget.used"] < 1
    assert attrs["http.response.status_code"] == 200
    assert attrs["tollhouse.overhead_ms"] >= 0
    assert "gen_ai.input.messages" not in attrs  # content capture is off

    assert client.name == "chat demo-llama"
    cattrs = dict(client.attributes or {})
    assert cattrs.keys() >= CLIENT_NAMES
    assert cattrs["gen_ai.request.model"] == "demo-llama"
    assert cattrs["server.address"] == "127.0.0.1"
    assert cattrs["server.port"] == urlsplit(harness.beta.url).port
    assert cattrs["gen_ai.response.id"] == answer.id
    assert cattrs["gen_ai.response.model"] == answer.model
    assert list(cattrs["gen_ai.response.finish_reasons"]) == [answer.choices[0].finish_reason]
    assert cattrs["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert cattrs["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert client.status_code == "UNSET"
    assert server.start_ns <= client.start_ns and client.end_ns <= server.end_ns


def test_streaming_client_span_lasts_the_stream(obs: Observed) -> None:
    harness = obs.harness
    stream = harness.client().chat.completions.with_raw_response.create(
        model="chat-default",
        messages=[{"role": "user", "content": "Count to five."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    request_id = stream.headers["x-request-id"]
    chunks = list(stream.parse())
    usage = chunks[-1].usage
    assert usage is not None
    server, clients = _tree(obs.spans_of(request_id))
    assert server.name == "chat chat-default"
    assert len(clients) == 1
    attrs = dict(server.attributes or {})
    assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attrs["gen_ai.provider.name"] == "openai_compatible"
    assert attrs["tollhouse.destination"] == "internal"
    client = dict(clients[0].attributes or {})
    assert client["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert client["gen_ai.response.finish_reasons"] == ["stop"]
    assert clients[0].end_ns <= server.end_ns
    ttfc = obs.points("gen_ai.client.operation.time_to_first_chunk")
    assert any(labels["gen_ai.request.model"] == "demo-llama" for labels, _ in ttfc)


def test_embeddings_span(obs: Observed) -> None:
    raw = obs.harness.client().embeddings.with_raw_response.create(
        model="embed-default", input=["first text", "second text"]
    )
    result = raw.parse()
    server, clients = _tree(obs.spans_of(raw.headers["x-request-id"]))
    assert server.name == "embeddings embed-default"
    attrs = dict(server.attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    assert "gen_ai.usage.output_tokens" not in attrs
    assert [c.name for c in clients] == ["embeddings demo-embed"]


def test_blocked_request_has_no_client_span(obs: Observed) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        obs.harness.client().chat.completions.create(
            model="chat-default", messages=[{"role": "user", "content": "the nightjar plan"}]
        )
    request_id = caught.value.response.headers["x-request-id"]
    server, clients = _tree(obs.spans_of(request_id))
    assert clients == []
    assert obs.harness.alpha.received == []
    attrs = dict(server.attributes or {})
    assert server.name == "chat chat-default"
    assert attrs["tollhouse.decision"] == "block"
    assert attrs["error.type"] == caught.value.code
    assert attrs["tollhouse.completion"] == "rejected"
    assert "tollhouse.route.reason" not in attrs  # refused before any routing
    assert attrs["http.response.status_code"] == 400
    assert server.status_code == "ERROR"
    blocked = [
        p.value
        for labels, p in obs.points("tollhouse.decisions")
        if labels.get("tollhouse.decision") == "block"
    ]
    assert blocked and blocked[0] >= 1


def test_retried_request_has_a_client_span_per_attempt(obs: Observed) -> None:
    harness = obs.harness
    harness.alpha.inject(Fault("status", status=503, times=2))  # both tries on alpha fail
    raw = harness.client().chat.completions.with_raw_response.create(
        model="chat-fallback", messages=[{"role": "user", "content": "hello"}]
    )
    server, clients = _tree(obs.spans_of(raw.headers["x-request-id"]))
    assert len(clients) == 3
    failed, answered = clients[:2], clients[2]
    for number, span in enumerate(failed, start=1):
        attrs = dict(span.attributes or {})
        assert span.status_code == "ERROR"
        assert attrs["error.type"] == "injected_503"
        assert attrs["tollhouse.upstream"] == "alpha"
        assert attrs["tollhouse.attempt"] == number
    assert dict(answered.attributes or {})["tollhouse.upstream"] == "beta"
    assert answered.status_code == "UNSET"
    # Each attempt's traceparent names its own client span.
    sent = [_traceparent(r["headers"])[1] for r in harness.alpha.received + harness.beta.received]
    assert sent == [s.span_id for s in clients]
    attrs = dict(server.attributes or {})
    assert attrs["tollhouse.attempts"] == 3
    assert attrs["tollhouse.upstream"] == "beta"
    # The routing decision: the order tried and why alpha came first.
    assert attrs["tollhouse.route.candidates"] == ["alpha", "beta"]
    assert attrs["tollhouse.route.reason"] == "the only ready weighted deployment"
    assert "tollhouse.route.excluded" not in attrs
    assert "error.type" not in attrs
    errors = obs.points("tollhouse.upstream.errors")
    assert any(
        labels == {"tollhouse.upstream": "alpha", "error.type": "injected_503"} and p.value >= 2
        for labels, p in errors
    )
    retries = obs.points("tollhouse.upstream.retries")
    assert any(labels.get("tollhouse.upstream") == "beta" for labels, _ in retries)


def test_metrics_follow_the_conventions(obs: Observed) -> None:
    harness = obs.harness
    harness.client().chat.completions.create(
        model="chat-external",
        messages=[{"role": "user", "content": f"Mail {EMAIL} and {EMAIL.upper()}."}],
    )
    usage = obs.points("gen_ai.client.token.usage")
    types = {labels["gen_ai.token.type"] for labels, _ in usage}
    assert types == {"input", "output"}
    external = [labels for labels, _ in usage if labels.get("gen_ai.provider.name") == "openai"]
    assert (
        external
        and {
            "gen_ai.operation.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "server.address",
            "server.port",
        }
        <= external[0].keys()
    )
    bounds = usage[0][1].explicit_bounds
    assert list(bounds[:4]) == [1, 4, 16, 64]
    durations = obs.points("gen_ai.client.operation.duration")
    assert durations and all(p.sum > 0 for _, p in durations)
    redactions = obs.points("tollhouse.redactions")
    assert any(
        labels
        == {
            "tollhouse.pii.entity": "EMAIL_ADDRESS",
            "tollhouse.pii.action": "pseudonymize",
            "tollhouse.destination": "external",
        }
        and p.value >= 2
        for labels, p in redactions
    )
    assert any(p.value >= 1 for _, p in obs.points("tollhouse.audit.write.duration"))
    queue = obs.points("tollhouse.audit.queue.depth")
    assert queue and queue[0][1].value >= 0
    budget = obs.points("tollhouse.budget.utilization")
    assert any(
        labels.get("tollhouse.budget.name") == "app-daily"
        and labels.get("tollhouse.budget.subject") == "suite"
        for labels, _ in budget
    )
    spend = obs.points("tollhouse.spend")
    assert any(labels.get("tollhouse.app") == "suite" and p.value > 0 for labels, p in spend)
    http = obs.points("http.server.request.duration")
    assert any(labels.get("http.route") == "/v1/chat/completions" for labels, _ in http)


def test_content_is_captured_only_when_enabled_and_only_redacted(obs: Observed) -> None:
    obs.telemetry.capture_content = True
    raw = obs.harness.client().chat.completions.with_raw_response.create(
        model="chat-external",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Please reply to {EMAIL} today."},
        ],
    )
    server, _ = _tree(obs.spans_of(raw.headers["x-request-id"]))
    attrs = dict(server.attributes or {})
    messages = json.loads(attrs["gen_ai.input.messages"])
    assert [m["role"] for m in messages] == ["system", "user"]
    text = messages[1]["parts"][0]["content"]
    assert EMAIL not in text and "<EMAIL_ADDRESS>" in text
    output = json.loads(attrs["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant" and output[0]["finish_reason"] == "stop"
    assert EMAIL not in attrs["gen_ai.output.messages"]
