"""The W3C trace context crosses Tollhouse into vLLM.

vLLM (started with ``--otlp-traces-endpoint``) exports a span per request, parented on the
``traceparent`` it received. Tollhouse and vLLM export to the same OTLP receiver, so the
whole chain can be read back: the caller's span, Tollhouse's server span, its client span
for the upstream attempt, and vLLM's request span under that client span.
"""

from __future__ import annotations

from openai.types.chat import ChatCompletionMessageParam

from tests.proxy.conftest import Harness
from tests.support.otlp import OtlpHttpReceiver, ReceivedSpan
from tests.vllm.conftest import CHAT_ALIAS, EMBED_ALIAS, PROXY_SERVICE
from tests.vllm.support import Trace, vllm_usage

ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "where does this request go"}]


def proxy_spans(otlp: OtlpHttpReceiver, request_id: str) -> tuple[ReceivedSpan, ReceivedSpan]:
    """Tollhouse's server span of the request and its one client span (the upstream call)."""

    def pair(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        ours = [s for s in spans if s.resource.get("service.name") == PROXY_SERVICE]
        server = [s for s in ours if s.attributes.get("tollhouse.request.id") == request_id]
        if not server:
            return []
        clients = [s for s in ours if s.kind == "CLIENT" and s.parent_span_id == server[0].span_id]
        return [*server, *clients]

    found = pair(otlp.wait_for_spans(lambda spans: len(pair(spans)) >= 2, timeout_s=15))
    server, *clients = found
    assert server.kind == "SERVER" and len(clients) == 1, found
    return server, clients[0]


def test_caller_trace_continues_through_tollhouse_into_vllm(
    tollhouse: Harness, otlp: OtlpHttpReceiver
) -> None:
    caller = Trace.new()
    raw = tollhouse.client().chat.completions.with_raw_response.create(
        model=CHAT_ALIAS, messages=ASK, max_tokens=4, extra_headers=caller.headers
    )
    server, client = proxy_spans(otlp, raw.headers["x-request-id"])
    (vllm,) = vllm_usage(otlp, caller.trace_id, "vllm-chat-a").spans

    assert server.trace_id == client.trace_id == vllm.trace_id == caller.trace_id
    assert server.parent_span_id == caller.span_id
    assert vllm.parent_span_id == client.span_id  # the traceparent Tollhouse sent vLLM
    assert vllm.kind == "SERVER" and vllm.attributes["gen_ai.request.id"] == raw.parse().id
    assert client.attributes["gen_ai.request.model"] == "tiny-llama"
    assert client.start_ns <= vllm.start_ns and vllm.end_ns <= client.end_ns + 50_000_000


def test_streamed_request_without_caller_trace_gets_tollhouse_trace(
    tollhouse: Harness, otlp: OtlpHttpReceiver
) -> None:
    """A caller that sends no trace context: Tollhouse starts the trace, vLLM joins it."""
    with tollhouse.client().chat.completions.with_streaming_response.create(
        model=CHAT_ALIAS, messages=ASK, max_tokens=4, stream=True
    ) as streamed:
        request_id = streamed.headers["x-request-id"]
        list(streamed.parse())
    server, client = proxy_spans(otlp, request_id)
    (vllm,) = vllm_usage(otlp, server.trace_id, "vllm-chat-a").spans

    assert server.parent_span_id is None
    assert vllm.parent_span_id == client.span_id


def test_embedding_inputs_each_join_the_trace(tollhouse: Harness, otlp: OtlpHttpReceiver) -> None:
    caller = Trace.new()
    raw = tollhouse.client().embeddings.with_raw_response.create(
        model=EMBED_ALIAS,
        input=["first input", "second input", "third"],
        extra_headers=caller.headers,
    )
    _, client = proxy_spans(otlp, raw.headers["x-request-id"])
    usage = vllm_usage(otlp, caller.trace_id, "vllm-embed", requests=3)
    assert {span.parent_span_id for span in usage.spans} == {client.span_id}
