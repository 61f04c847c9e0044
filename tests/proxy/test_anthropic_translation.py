"""The Anthropic adapter's translations, both ways, without a network."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from governance.errors import UpstreamError, UpstreamProtocolError
from proxy.upstream.anthropic.request import DEFAULT_MAX_TOKENS, to_messages_request
from proxy.upstream.anthropic.response import to_chat_completion
from proxy.upstream.anthropic.stream import ChunkTranslator
from tests.upstream.anthropic_server import stream_events

PIXEL = (  # a synthetic 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def translate(**body: Any) -> dict[str, Any]:
    return to_messages_request("claude", {"model": "claude-test-1", **body})


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    out = translate(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Hi"},
        ]
    )
    assert out["system"] == "Be brief.\n\nAnswer in English."
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert out["model"] == "claude-test-1"
    assert out["max_tokens"] == DEFAULT_MAX_TOKENS
    assert "stream" not in out and "metadata" not in out


def test_parameters_are_carried_over() -> None:
    out = translate(
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=50,
        max_completion_tokens=30,
        temperature=0.3,
        top_p=0.9,
        stop="END",
        user="end-user-7",
        stream=True,
        seed=4,  # ignored: a hint, not a change to what a valid answer is
        presence_penalty=0.5,
    )
    assert out["max_tokens"] == 30  # max_completion_tokens wins
    assert (out["temperature"], out["top_p"]) == (0.3, 0.9)
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "end-user-7"}
    assert out["stream"] is True
    assert "seed" not in out and "presence_penalty" not in out
    assert translate(messages=[{"role": "user", "content": "x"}], stop=["a", "b"])[
        "stop_sequences"
    ] == ["a", "b"]


def test_multi_part_content_images_and_merged_turns() -> None:
    out = translate(
        messages=[
            {"role": "user", "content": "First."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            },
        ]
    )
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "First."},
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                },
            ],
        }
    ]


def test_tool_calls_and_results_round_trip() -> None:
    out = translate(
        messages=[
            {"role": "user", "content": "Weather in Utrecht?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Utrecht"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Gouda"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "12 C, rain"},
            {
                "role": "tool",
                "tool_call_id": "toolu_2",
                "content": [{"type": "text", "text": "9 C"}],
            },
        ],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Utrecht"},
            },
            {
                "type": "tool_use",
                "id": "toolu_2",
                "name": "get_weather",
                "input": {"city": "Gouda"},
            },
        ],
    }
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 C, rain"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "9 C"},
        ],
    }
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    out = translate(
        messages=[{"role": "user", "content": "x"}], tools=[WEATHER_TOOL], tool_choice=choice
    )
    assert out["tool_choice"] == expected


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
def test_parameters_that_change_the_answer_are_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        translate(messages=[{"role": "user", "content": "x"}], **extra)
    error = caught.value
    assert (error.status, error.type, error.param, error.retryable) == (
        400,
        "invalid_request_error",
        param,
        False,
    )
    assert "claude" in error.message


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}],
        [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
    ],
)
def test_unsupported_content_is_refused(content: list[dict[str, Any]]) -> None:
    with pytest.raises(UpstreamError) as caught:
        translate(messages=[{"role": "user", "content": content}])
    assert caught.value.status == 400 and not caught.value.retryable


def test_invalid_tool_arguments_are_refused() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(UpstreamError, match="not valid JSON"):
        translate(messages=[{"role": "assistant", "content": None, "tool_calls": [call]}])


def message(**fields: Any) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-1",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5},
        **fields,
    }


def test_answer_becomes_a_chat_completion() -> None:
    out = to_chat_completion("claude", message(), created=1_700_000_000)
    assert out == {
        "id": "msg_1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "claude-test-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def test_tool_use_answer_and_cache_usage() -> None:
    out = to_chat_completion(
        "claude",
        message(
            content=[
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_9",
                    "name": "get_weather",
                    "input": {"city": "Ede"},
                },
            ],
            stop_reason="tool_use",
            usage={
                "input_tokens": 10,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 7,
                "output_tokens": 5,
            },
        ),
    )
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    [call] = choice["message"]["tool_calls"]
    assert (call["id"], call["type"], call["function"]["name"]) == (
        "toolu_9",
        "function",
        "get_weather",
    )
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Ede"}
    assert out["usage"] == {
        "prompt_tokens": 117,
        "completion_tokens": 5,
        "total_tokens": 122,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    out = to_chat_completion("claude", message(stop_reason=stop_reason))
    assert out["choices"][0]["finish_reason"] == finish


def test_garbage_answer_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        to_chat_completion("claude", {"hello": "world"})


def run_stream(events: list[dict[str, Any]], include_usage: bool = True) -> list[dict[str, Any]]:
    translator = ChunkTranslator("claude", include_usage, created=1)
    chunks = [orjson.loads(c) for e in events for c in translator.translate(e)]
    assert translator.stopped
    return chunks


def test_stream_of_text_and_a_tool_call() -> None:
    answer = message(
        content=[
            {"type": "text", "text": "Checking the weather."},
            {
                "type": "tool_use",
                "id": "toolu_7",
                "name": "get_weather",
                "input": {"city": "Zwolle"},
            },
            {
                "type": "tool_use",
                "id": "toolu_8",
                "name": "get_weather",
                "input": {"city": "Breda"},
            },
        ],
        stop_reason="tool_use",
        usage={"input_tokens": 30, "cache_read_input_tokens": 2, "output_tokens": 17},
    )
    chunks = run_stream(stream_events(answer))
    assert all(c["id"] == "msg_1" and c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == "Checking the weather."
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for call in delta.get("tool_calls", ()):
            slot = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
            if "id" in call:
                assert call["type"] == "function"
                slot["id"], slot["name"] = call["id"], call["function"]["name"]
            slot["arguments"] += call["function"]["arguments"]
    assert calls[0]["id"] == "toolu_7" and orjson.loads(calls[0]["arguments"]) == {"city": "Zwolle"}
    assert calls[1]["id"] == "toolu_8" and orjson.loads(calls[1]["arguments"]) == {"city": "Breda"}
    pieces = [d for d in deltas if d.get("tool_calls") and "id" not in d["tool_calls"][0]]
    assert len(pieces) > 2  # the arguments arrived in several input_json_delta pieces
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finish] == ["tool_calls"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 32,
        "completion_tokens": 17,
        "total_tokens": 49,
        "prompt_tokens_details": {"cached_tokens": 2},
    }


def test_stream_without_usage_request_has_no_usage_chunk() -> None:
    chunks = run_stream(stream_events(message()), include_usage=False)
    assert all(c["choices"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_error_event_mid_stream_raises() -> None:
    translator = ChunkTranslator("claude", True)
    events = stream_events(message())
    translator.translate(events[0])
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamError) as caught:
        translator.translate(error)
    assert caught.value.type == "overloaded_error"
    assert "Overloaded" in caught.value.message and "claude" in caught.value.message


def test_events_before_message_start_are_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        ChunkTranslator("claude", True).translate({"type": "content_block_start", "index": 0})
