"""Through the proxy, the official client gets what it would get from the upstream directly."""

from __future__ import annotations

import asyncio
import json

import openai

from tests.proxy.conftest import Harness

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three rivers in Portugal, please."},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        },
    },
}


def direct(proxy: Harness) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.alpha.url, api_key="unused", max_retries=0)


def test_chat_matches_direct(proxy: Harness) -> None:
    via = proxy.client().chat.completions.create(model="chat-default", messages=MESSAGES, n=2)
    straight = direct(proxy).chat.completions.create(model="demo-llama", messages=MESSAGES, n=2)
    assert via.model_dump() == straight.model_dump()
    assert via.system_fingerprint == "fp_alpha"
    assert len(via.choices) == 2


def test_streaming_chat_matches_direct(proxy: Harness) -> None:
    for options in (None, {"include_usage": True}):
        extra = {"stream_options": options} if options else {}
        via = list(
            proxy.client().chat.completions.create(
                model="chat-default", messages=MESSAGES, stream=True, **extra
            )
        )
        straight = list(
            direct(proxy).chat.completions.create(
                model="demo-llama", messages=MESSAGES, stream=True, **extra
            )
        )
        assert [c.model_dump() for c in via] == [c.model_dump() for c in straight]
        assert (via[-1].usage is not None) == bool(options)
    # Tollhouse always asked the upstream for usage, even when the client did not.
    proxied = [r for r in proxy.alpha.received if r["headers"]["Authorization"] != "Bearer unused"]
    assert len(proxied) == 2
    assert all(r["body"]["stream_options"] == {"include_usage": True} for r in proxied)


def test_completions_match_direct(proxy: Harness) -> None:
    kwargs = {"prompt": "Once upon a time", "max_tokens": 5}
    via = proxy.client().completions.create(model="chat-default", **kwargs)
    straight = direct(proxy).completions.create(model="demo-llama", **kwargs)
    assert via.model_dump() == straight.model_dump()
    assert via.choices[0].finish_reason == "length"
    via_stream = [
        c.model_dump()
        for c in proxy.client().completions.create(model="chat-default", stream=True, **kwargs)
    ]
    straight_stream = [
        c.model_dump()
        for c in direct(proxy).completions.create(model="demo-llama", stream=True, **kwargs)
    ]
    assert via_stream == straight_stream


def test_embeddings_match_direct(proxy: Harness) -> None:
    for encoding in ("float", "base64"):
        inputs = ["first document", "second one"]
        via = proxy.client().embeddings.create(
            model="embed-default", input=inputs, encoding_format=encoding
        )  # type: ignore[arg-type]
        straight = direct(proxy).embeddings.create(
            model="demo-embed", input=inputs, encoding_format=encoding
        )  # type: ignore[arg-type]
        assert via.model_dump(warnings=False) == straight.model_dump(warnings=False)
    # The client's default (base64 on the wire) decodes to the same floats.
    floats = proxy.client().embeddings.create(
        model="embed-default", input=inputs, encoding_format="float"
    )
    default = proxy.client().embeddings.create(model="embed-default", input="first document")
    assert default.data[0].embedding == floats.data[0].embedding


def test_tool_calls_survive_the_round_trip(proxy: Harness) -> None:
    client = proxy.client()
    first = client.chat.completions.create(
        model="chat-default",
        messages=[{"role": "user", "content": "Weather in Porto?"}],
        tools=[WEATHER_TOOL],
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "demo", "days": 1}
    followup = [
        {"role": "user", "content": "Weather in Porto?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    second = client.chat.completions.create(
        model="chat-default", messages=followup, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].message.content == 'The tool returned: {"temp_c": 21}'
    # The upstream received the assistant tool call and the tool result unchanged.
    sent = proxy.alpha.received[-1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == followup[2]
    # Streamed tool calls reassemble to the same call.
    chunks = list(
        client.chat.completions.create(
            model="chat-default",
            messages=[{"role": "user", "content": "Weather in Porto?"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert arguments == call.function.arguments


def test_every_content_shape_is_accepted(proxy: Harness) -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {
            "role": "user",
            "name": "dana",
            "content": [
                {"type": "text", "text": "Describe these."},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"filename": "notes.txt", "file_data": "aGVsbG8="}},
            ],
        },
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot."}]},
        {"role": "user", "content": "Then just say hi."},
    ]
    answer = proxy.client().chat.completions.create(model="chat-default", messages=messages)
    assert answer.choices[0].message.content.endswith("You said: Then just say hi.")
    assert proxy.alpha.received[-1]["body"]["messages"] == messages


def test_unknown_fields_pass_through(proxy: Harness) -> None:
    proxy.client().chat.completions.create(
        model="chat-default", messages=MESSAGES, extra_body={"top_k": 5, "guided_json": {"a": 1}}
    )
    body = proxy.alpha.received[-1]["body"]
    assert body["top_k"] == 5 and body["guided_json"] == {"a": 1}
    assert body["model"] == "demo-llama"


def test_async_client(proxy: Harness) -> None:
    async def run() -> list[str]:
        client = proxy.async_client()
        answers = await asyncio.gather(
            *[
                client.chat.completions.create(
                    model="chat-default", messages=[{"role": "user", "content": f"question {i}"}]
                )
                for i in range(8)
            ]
        )
        stream = await client.chat.completions.create(
            model="chat-default", messages=MESSAGES, stream=True
        )
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return [a.choices[0].message.content or "" for a in answers] + ["".join(pieces)]

    texts = asyncio.run(run())
    assert [t.endswith(f"question {i}") for i, t in enumerate(texts[:8])] == [True] * 8
    assert texts[8].startswith("This is the Tollhouse demo model")


def test_upstream_key_is_sent_and_client_key_is_not(proxy: Harness) -> None:
    proxy.client().chat.completions.create(model="chat-default", messages=MESSAGES)
    headers = proxy.alpha.received[-1]["headers"]
    assert headers["Authorization"] == "Bearer sk-test-alpha-not-a-secret"
    assert proxy.suite_key not in json.dumps(headers)
