"""The OpenAI API through Tollhouse to a real vLLM: chat and text completions (whole and
streamed) and embeddings, through the official client.

Each request carries a trace context the test chose, so vLLM's own request span (exported
over OTLP) can be found and its usage compared with what the client got and with what the
audit trail recorded. The same request sent to vLLM directly (greedy decoding, ``ignore_eos``
so every answer is ``max_tokens`` long) must give the same usage and text: Tollhouse adds
nothing and loses nothing. The tiny model's text is noise; only the protocol is checked.
"""

from __future__ import annotations

import math
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.proxy.conftest import Harness
from tests.support.otlp import OtlpHttpReceiver
from tests.vllm.conftest import CHAT_ALIAS, EMBED_ALIAS
from tests.vllm.servers import CHAT_MODEL, EMBED_MODEL, MAX_MODEL_LEN, VllmFleet
from tests.vllm.support import Trace, assert_audited, vllm_usage

ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "the quick brown fox jumps over the lazy dog"}
]
PROMPT = "one two three four five"
MAX_TOKENS = 12
# Greedy and fixed-length, so the same request gives the same answer every time.
SAMPLING: dict[str, Any] = {
    "max_tokens": MAX_TOKENS,
    "temperature": 0,
    "seed": 7,
    "extra_body": {"ignore_eos": True},
}
CHAT_SERVICE = "vllm-chat-a"


@pytest.fixture
def vllm_direct(vllm_fleet: VllmFleet) -> openai.OpenAI:
    """The first chat replica, without Tollhouse in between."""
    return vllm_fleet.chat["chat-a"].client()


def test_chat_completion(
    tollhouse: Harness, otlp: OtlpHttpReceiver, vllm_direct: openai.OpenAI
) -> None:
    trace = Trace.new()
    raw = tollhouse.client().chat.completions.with_raw_response.create(
        model=CHAT_ALIAS, messages=ASK, extra_headers=trace.headers, **SAMPLING
    )
    reply = raw.parse()
    direct = vllm_direct.chat.completions.create(model=CHAT_MODEL, messages=ASK, **SAMPLING)

    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    (choice,) = reply.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    assert choice.message.content == direct.choices[0].message.content
    assert reply.usage is not None and direct.usage is not None
    assert reply.usage.completion_tokens == MAX_TOKENS
    assert reply.usage.model_dump() == direct.usage.model_dump()

    usage = vllm_usage(otlp, trace.trace_id, CHAT_SERVICE)
    assert usage.request_ids == [reply.id]  # the answer is the one vLLM traced
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    record = assert_audited(tollhouse, raw.headers["x-request-id"], usage, "vllm-chat-a", "chat")
    assert record.response_id == reply.id and record.deployment_model == CHAT_MODEL
    assert record.finish_reasons == ["length"]
    assert record.system_fingerprint == reply.system_fingerprint
    assert (reply.system_fingerprint or "").startswith("vllm-0.32.0")


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_chat_completion(
    tollhouse: Harness,
    otlp: OtlpHttpReceiver,
    vllm_direct: openai.OpenAI,
    include_usage: bool,
) -> None:
    """vLLM's usage reaches the audit trail whether or not the client asked for it; the
    client gets the usage chunk only if it did."""
    trace = Trace.new()
    with tollhouse.client().chat.completions.with_streaming_response.create(
        model=CHAT_ALIAS,
        messages=ASK,
        stream=True,
        stream_options={"include_usage": True} if include_usage else openai.omit,
        extra_headers=trace.headers,
        **SAMPLING,
    ) as streamed:
        request_id = streamed.headers["x-request-id"]
        chunks = list(streamed.parse())
    direct = vllm_direct.chat.completions.create(model=CHAT_MODEL, messages=ASK, **SAMPLING)

    assert chunks and all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and text == direct.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and not any(finishes[:-1])
    reported = [c.usage for c in chunks if c.usage is not None]

    usage = vllm_usage(otlp, trace.trace_id, CHAT_SERVICE)
    assert usage.request_ids == [chunks[0].id]
    assert direct.usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        direct.usage.prompt_tokens,
        MAX_TOKENS,
    )
    if include_usage:
        (last,) = reported
        assert chunks[-1].usage is last and not chunks[-1].choices
        assert (last.prompt_tokens, last.completion_tokens) == (
            usage.prompt_tokens,
            usage.completion_tokens,
        )
    else:
        assert reported == []  # Tollhouse asked vLLM for usage, and kept it to itself
    record = assert_audited(tollhouse, request_id, usage, "vllm-chat-a", "chat")
    assert record.stream is True and record.finish_reasons == ["length"]
    assert record.ttft_ms is not None and 0 < record.ttft_ms <= (record.latency_ms or 0)
    assert tollhouse.content(request_id)[1]["response"][0]["content"] == text


def test_text_completion(
    tollhouse: Harness, otlp: OtlpHttpReceiver, vllm_direct: openai.OpenAI
) -> None:
    trace = Trace.new()
    raw = tollhouse.client().completions.with_raw_response.create(
        model=CHAT_ALIAS, prompt=PROMPT, extra_headers=trace.headers, **SAMPLING
    )
    reply = raw.parse()
    direct = vllm_direct.completions.create(model=CHAT_MODEL, prompt=PROMPT, **SAMPLING)

    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    (choice,) = reply.choices
    assert choice.text and choice.text == direct.choices[0].text
    assert choice.finish_reason == "length"
    assert reply.usage is not None and direct.usage is not None
    assert reply.usage.model_dump() == direct.usage.model_dump()
    usage = vllm_usage(otlp, trace.trace_id, CHAT_SERVICE)
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        reply.usage.prompt_tokens,
        MAX_TOKENS,
    )
    record = assert_audited(tollhouse, raw.headers["x-request-id"], usage, "vllm-chat-a", "chat")
    assert record.endpoint == "completions" and record.response_id == reply.id


def test_streamed_text_completion(
    tollhouse: Harness, otlp: OtlpHttpReceiver, vllm_direct: openai.OpenAI
) -> None:
    trace = Trace.new()
    with tollhouse.client().completions.with_streaming_response.create(
        model=CHAT_ALIAS,
        prompt=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=trace.headers,
        **SAMPLING,
    ) as streamed:
        request_id = streamed.headers["x-request-id"]
        chunks = list(streamed.parse())
    direct = vllm_direct.completions.create(model=CHAT_MODEL, prompt=PROMPT, **SAMPLING)

    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == direct.choices[0].text
    (reported,) = [c.usage for c in chunks if c.usage is not None]
    assert direct.usage is not None
    assert (reported.prompt_tokens, reported.completion_tokens) == (
        direct.usage.prompt_tokens,
        MAX_TOKENS,
    )
    usage = vllm_usage(otlp, trace.trace_id, CHAT_SERVICE)
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        reported.prompt_tokens,
        reported.completion_tokens,
    )
    record = assert_audited(tollhouse, request_id, usage, "vllm-chat-a", "chat")
    assert record.stream is True and record.endpoint == "completions"


@pytest.mark.parametrize("encoding_format", [None, "float"])
def test_embeddings(
    tollhouse: Harness,
    otlp: OtlpHttpReceiver,
    vllm_fleet: VllmFleet,
    encoding_format: str | None,
) -> None:
    """Both wire encodings of the vectors pass through unchanged: unless told otherwise the
    official client asks for base64 and decodes it; ``float`` is a JSON list."""
    inputs = ["the audit record", "a quick brown fox jumps over the lazy dog"]
    trace = Trace.new()
    kwargs: dict[str, Any] = {"encoding_format": encoding_format} if encoding_format else {}
    raw = tollhouse.client().embeddings.with_raw_response.create(
        model=EMBED_ALIAS, input=inputs, extra_headers=trace.headers, **kwargs
    )
    reply = raw.parse()
    direct = vllm_fleet.embed.client().embeddings.create(model=EMBED_MODEL, input=inputs)

    assert [item.index for item in reply.data] == [0, 1]
    for item, mine in zip(reply.data, direct.data, strict=True):
        assert len(item.embedding) == 384  # all-MiniLM-L6-v2
        assert math.isclose(math.fsum(x * x for x in item.embedding), 1.0, rel_tol=1e-4)
        cosine = math.fsum(a * b for a, b in zip(item.embedding, mine.embedding, strict=True))
        assert cosine > 0.9999
    first, second = (item.embedding for item in reply.data)
    assert math.fsum(a * b for a, b in zip(first, second, strict=True)) < 0.99  # not one vector
    assert reply.usage.prompt_tokens == direct.usage.prompt_tokens > 0

    usage = vllm_usage(otlp, trace.trace_id, "vllm-embed", requests=len(inputs))
    assert (usage.prompt_tokens, usage.completion_tokens) == (reply.usage.prompt_tokens, 0)
    record = assert_audited(tollhouse, raw.headers["x-request-id"], usage, "vllm-embed", "embed")
    assert record.endpoint == "embeddings" and record.deployment_model == EMBED_MODEL


def test_vllm_refusal_reaches_the_client_and_the_audit_trail(tollhouse: Harness) -> None:
    """A request vLLM refuses (more tokens than the model's context) comes back as the
    client error vLLM gave, with vLLM's message, and is recorded as such."""
    with pytest.raises(openai.BadRequestError) as caught:
        tollhouse.client().chat.completions.create(
            model=CHAT_ALIAS, messages=ASK, max_tokens=MAX_MODEL_LEN + 1
        )
    error = caught.value
    assert "max_model_len" in str(error.message)
    assert error.request_id
    record = tollhouse.completed(error.request_id, wait_s=10.0)
    assert record.status == "upstream_error" and record.http_status == 400
    assert "max_model_len" in (record.error_message or "")
    assert record.attempts is not None
    (attempt,) = record.attempts  # a client error is not retried
    assert (attempt["upstream"], attempt["model"], attempt["http_status"]) == (
        "vllm-chat-a",
        CHAT_MODEL,
        400,
    )
    assert not record.input_tokens and not record.cost
