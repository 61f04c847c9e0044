"""``kind: anthropic`` end to end: the official openai client -> Tollhouse -> a loopback
fake of the Messages API, and the adapter alone for what only the upstream sees."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from governance.config.schema import UpstreamConfig
from governance.errors import UpstreamError
from governance.pii import TextAnalyzer
from proxy.upstream.anthropic import AnthropicAdapter
from tests.proxy.conftest import Harness, running_proxy, suite_config
from tests.upstream.anthropic_server import DEFAULT_TEXT, DEFAULT_USAGE, AnthropicServer, Scripted
from tests.upstream.faulty import FaultyUpstream

MODEL = "claude-test-1"
KEY = "sk-test-alpha-not-a-secret"  # what running_proxy's env gives ALPHA_KEY (synthetic)
ASK = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}
PROMPT_TOKENS = (
    DEFAULT_USAGE["input_tokens"]
    + DEFAULT_USAGE["cache_read_input_tokens"]
    + DEFAULT_USAGE["cache_creation_input_tokens"]
)


def claude_upstream(base_url: str) -> dict[str, Any]:
    return {
        "name": "claude",
        "kind": "anthropic",
        "base_url": base_url,
        "api_key_env": "ALPHA_KEY",
        "destination": "external",
        "timeout_s": 2.0,
        "connect_timeout_s": 1.0,
        "fingerprint_headers": ["request-id"],
    }


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicServer]:
    server = AnthropicServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def running(
    database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
    fake: AnthropicServer,
) -> Iterator[Harness]:
    alpha, beta = upstreams
    base = suite_config(alpha.url, beta.url, database_url)
    models = [
        *base["models"],
        {"name": "chat-claude", "deployments": [{"upstream": "claude", "model": MODEL}]},
        {"name": "embed-claude", "deployments": [{"upstream": "claude", "model": MODEL}]},
    ]
    with running_proxy(
        database_url,
        upstreams,
        analyzer,
        upstreams=[*base["upstreams"], claude_upstream(fake.base_url)],
        models=models,
    ) as harness:
        yield harness


@pytest.fixture
def proxy(running: Harness, fake: AnthropicServer) -> Harness:
    fake.reset()
    return running


def test_chat_is_translated_both_ways(proxy: Harness, fake: AnthropicServer) -> None:
    raw = proxy.client().chat.completions.with_raw_response.create(
        model="chat-claude", messages=ASK, max_tokens=64, temperature=0.2, user="end-user-3"
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.id, answer.model, answer.object) == ("msg_fake_0001", MODEL, "chat.completion")
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (PROMPT_TOKENS, 8)
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 4

    [received] = fake.received
    assert received["path"] == "/v1/messages"
    assert received["body"] == {
        "model": MODEL,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
        "max_tokens": 64,
        "temperature": 0.2,
        "metadata": {"user_id": "end-user-3"},
    }
    headers = {k.lower(): v for k, v in received["headers"].items()}
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers

    record = proxy.completed(raw.headers["x-request-id"])
    assert (record.upstream, record.deployment_model, record.status) == ("claude", MODEL, "ok")
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, 8)
    assert record.cached_input_tokens == 4 and not record.usage_estimated
    assert record.response_id == "msg_fake_0001" and record.finish_reasons == ["stop"]
    assert record.attempts is not None
    assert record.attempts[0]["headers"] == {"request-id": "req_fake_1"}


@pytest.mark.parametrize("client_wants_usage", [True, False])
def test_streaming_chat_with_usage(
    proxy: Harness, fake: AnthropicServer, client_wants_usage: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if client_wants_usage else {}
    with proxy.client().chat.completions.with_streaming_response.create(
        model="chat-claude", messages=ASK, stream=True, **options
    ) as streamed:
        request_id = streamed.headers["x-request-id"]
        chunks = list(streamed.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    if client_wants_usage:
        [usage] = usage_chunks
        assert usage.choices == [] and usage.usage is not None
        assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (PROMPT_TOKENS, 8)
    else:
        assert usage_chunks == []
    assert fake.received[0]["body"]["stream"] is True

    record = proxy.completed(request_id, wait_s=5)
    assert record.status == "ok" and not record.usage_estimated
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, 8)
    assert record.cached_input_tokens == 4
    assert record.response_id == "msg_fake_0001"


def test_tool_call_round_trip(proxy: Harness, fake: AnthropicServer) -> None:
    client = proxy.client()
    question = [{"role": "user", "content": "Find x."}]
    first = client.chat.completions.create(model="chat-claude", messages=question, tools=[TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look that up."
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.id == "toolu_fake_1" and call.function.name == "lookup"
    assert orjson.loads(call.function.arguments) == {"q": "x"}
    assert fake.received[0]["body"]["tools"] == [
        {
            "name": "lookup",
            "description": "Look something up",
            "input_schema": TOOL["function"]["parameters"],
        }
    ]

    followup: list[Any] = [
        *question,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "x is 42"},
    ]
    second = client.chat.completions.create(model="chat-claude", messages=followup, tools=[TOOL])
    assert second.choices[0].message.content == DEFAULT_TEXT
    sent = fake.received[1]["body"]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look that up."},
            {"type": "tool_use", "id": "toolu_fake_1", "name": "lookup", "input": {"q": "x"}},
        ],
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_fake_1", "content": "x is 42"}],
    }


def test_streamed_tool_call(proxy: Harness) -> None:
    stream = proxy.client().chat.completions.create(
        model="chat-claude",
        messages=[{"role": "user", "content": "Find x."}],
        tools=[TOOL],
        stream=True,
    )
    arguments, names, ids = "", [], []
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                assert call.index == 0
                if call.id:
                    ids.append(call.id)
                if call.function and call.function.name:
                    names.append(call.function.name)
                if call.function and call.function.arguments:
                    arguments += call.function.arguments
    assert (ids, names, finish) == (["toolu_fake_1"], ["lookup"], "tool_calls")
    assert orjson.loads(arguments) == {"q": "x"}


def test_rate_limit_then_success_is_retried(proxy: Harness, fake: AnthropicServer) -> None:
    fake.script(Scripted(status=429, error_type="rate_limit_error", retry_after="0"))
    raw = proxy.client().chat.completions.with_raw_response.create(
        model="chat-claude", messages=ASK
    )
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert len(fake.received) == 2
    record = proxy.completed(raw.headers["x-request-id"])
    assert record.attempts is not None
    assert [a["http_status"] for a in record.attempts] == [429, 200]


def test_overloaded_is_retried_then_reported(proxy: Harness, fake: AnthropicServer) -> None:
    fake.script(Scripted(status=529, error_type="overloaded_error", message="Overloaded", times=2))
    with pytest.raises(openai.InternalServerError) as caught:
        proxy.client().chat.completions.create(model="chat-claude", messages=ASK)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_http_529"
    assert caught.value.type == "overloaded_error"
    assert len(fake.received) == 2  # attempts_per_deployment


def test_invalid_request_is_not_retried(proxy: Harness, fake: AnthropicServer) -> None:
    fake.script(Scripted(status=400, error_type="invalid_request_error", message="bad field"))
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.client().chat.completions.create(model="chat-claude", messages=ASK)
    assert caught.value.type == "invalid_request_error"
    assert "bad field" in caught.value.message
    assert len(fake.received) == 1


def test_unsupported_parameters_and_endpoints_are_refused(
    proxy: Harness, fake: AnthropicServer
) -> None:
    client = proxy.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="chat-claude", messages=ASK, n=2)
    assert caught.value.param == "n" and caught.value.code == "unsupported_by_upstream"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="embed-claude", input=["a b c"])
    assert "claude" in caught.value.message and "embeddings" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="chat-claude", prompt="Hello")
    assert "completions" in caught.value.message
    assert fake.received == []


@pytest.mark.parametrize("scripted", [Scripted(error_after_events=5), Scripted(cut_after_events=5)])
def test_stream_broken_off_upstream_ends_with_an_error(
    proxy: Harness, fake: AnthropicServer, scripted: Scripted
) -> None:
    fake.script(scripted)
    with proxy.client().chat.completions.with_streaming_response.create(
        model="chat-claude", messages=ASK, stream=True
    ) as streamed:
        request_id = streamed.headers["x-request-id"]
        with pytest.raises(openai.APIError) as caught:
            list(streamed.parse())
    expected = "overloaded_error" if scripted.error_after_events else "message_stop"
    assert expected in caught.value.message
    record = proxy.completed(request_id, wait_s=5)
    assert record.status == "stream_interrupted"


def _adapter(fake: AnthropicServer, **config: Any) -> AnthropicAdapter:
    upstream = UpstreamConfig.model_validate({**claude_upstream(fake.base_url), **config})
    return AnthropicAdapter(upstream, "sk-ant-test-not-a-secret")


def test_adapter_forwards_trace_context_and_version(fake: AnthropicServer) -> None:
    fake.reset()
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}

    async def run() -> tuple[dict[str, str], list[bytes]]:
        adapter = _adapter(fake, api_version="2099-01-01")
        try:
            reply = await adapter.call("/chat/completions", body, {"traceparent": traceparent})
            stream = await adapter.open_stream(
                "/chat/completions", body, {"traceparent": traceparent}
            )
            try:
                events = [e async for e in stream.events()]
            finally:
                await stream.close()
            assert stream.watched_headers == {"request-id": "req_fake_2"}
            return reply.watched_headers, events
        finally:
            await adapter.close()

    watched, events = asyncio.run(run())
    assert watched == {"request-id": "req_fake_1"}
    assert events and all(b"chat.completion.chunk" in e for e in events)
    for received in fake.received:
        headers = {k.lower(): v for k, v in received["headers"].items()}
        assert headers["traceparent"] == traceparent
        assert headers["anthropic-version"] == "2099-01-01"
        assert headers["x-api-key"] == "sk-ant-test-not-a-secret"


def test_adapter_maps_connect_failures(fake: AnthropicServer) -> None:
    async def run() -> None:
        adapter = _adapter(fake, base_url="http://127.0.0.1:9")
        try:
            await adapter.call("/chat/completions", {"model": MODEL, "messages": ASK})
        finally:
            await adapter.close()

    with pytest.raises(UpstreamError) as caught:
        asyncio.run(run())
    assert caught.value.code == "upstream_unreachable" and caught.value.retryable
