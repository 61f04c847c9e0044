"""What the ``vllm`` tests share: trace contexts they choose, vLLM's own request spans, and
the check that an audit record carries vLLM's usage and the exact cost."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal

from governance.db import AuditRecord
from tests.proxy.conftest import Harness
from tests.support.otlp import OtlpStore, ReceivedSpan
from tests.vllm.conftest import PRICES

VLLM_SPAN = "llm_request"  # vLLM's span per engine request (vllm/v1/engine/output_processor.py)


@dataclass(frozen=True)
class Trace:
    """A W3C trace context a test sends as the caller's, to find the spans it leads to."""

    trace_id: str
    span_id: str

    @classmethod
    def new(cls) -> Trace:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @property
    def headers(self) -> dict[str, str]:
        return {"traceparent": f"00-{self.trace_id}-{self.span_id}-01"}


@dataclass(frozen=True)
class VllmUsage:
    """Usage as vLLM itself accounted it, from its request spans (one per engine request:
    an embeddings call with several inputs has one per input)."""

    prompt_tokens: int
    completion_tokens: int
    request_ids: list[str]
    spans: list[ReceivedSpan]


def vllm_usage(
    otlp: OtlpStore, trace_id: str, service: str, requests: int = 1, timeout_s: float = 15.0
) -> VllmUsage:
    """Wait for ``requests`` request spans of trace ``trace_id`` exported by the vLLM server
    whose ``service.name`` is ``service``; their usage summed."""

    def ours(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [
            s
            for s in spans
            if s.name == VLLM_SPAN
            and s.trace_id == trace_id
            and s.resource.get("service.name") == service
        ]

    spans = ours(otlp.wait_for_spans(lambda got: len(ours(got)) >= requests, timeout_s))
    assert len(spans) == requests, [s.attributes for s in spans]
    return VllmUsage(
        prompt_tokens=sum(int(s.attributes["gen_ai.usage.prompt_tokens"]) for s in spans),
        completion_tokens=sum(int(s.attributes["gen_ai.usage.completion_tokens"]) for s in spans),
        request_ids=sorted(str(s.attributes["gen_ai.request.id"]) for s in spans),
        spans=spans,
    )


def assert_audited(
    tollhouse: Harness, request_id: str, usage: VllmUsage, upstream: str, kind: str
) -> AuditRecord:
    """The request's completed record holds vLLM's usage (not an estimate) and the cost that
    usage makes at the suite's ``kind`` price; returns the record."""
    record = tollhouse.completed(request_id, wait_s=10.0)
    assert record.status == "ok", (record.status, record.error_message)
    assert record.upstream == upstream and record.destination == "internal"
    assert (record.input_tokens, record.output_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert record.usage_estimated is False
    price = PRICES[kind]
    assert record.cost == (
        usage.prompt_tokens * Decimal(price["input"])
        + usage.completion_tokens * Decimal(price["output"])
    ) / Decimal(1_000_000)
    return record
