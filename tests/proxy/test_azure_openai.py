"""Azure OpenAI upstreams end to end: the official client, Tollhouse, a loopback Azure.

The fake resource (`tests.upstream.azure_server`) checks the key, the API version and the
deployment the way Azure does, so each test also proves what went over the wire: the
deployment URL, the ``api-version`` query, the ``api-key`` header and no ``Authorization``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from governance.config import load_settings
from governance.db import AuditRecord
from governance.errors import ConfigError
from governance.pii import TextAnalyzer
from tests.proxy.conftest import Harness, running_proxy, suite_config
from tests.upstream.azure_server import (
    API_KEY,
    API_VERSION,
    REGION,
    AzureFault,
    AzureOpenAIServer,
    Received,
    tollhouse_upstream,
)
from tests.upstream.faulty import FaultyUpstream

CHAT_MODEL = "gpt-4o-2024-08-06"  # what the deployments serve (Azure names it in answers)
EMBED_MODEL = "text-embedding-3-small"
ASK = [{"role": "user", "content": "Summarise the synthetic ticket 4711 in one line."}]
# The caller's trace context: with tracing off, Tollhouse passes it on to the upstream.
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def deployment(alias: str, upstream: str, model: str) -> dict[str, Any]:
    return {"name": alias, "deployments": [{"upstream": upstream, "model": model}]}


AZURE_MODELS = [
    deployment("chat-azure", "azure", "chat-prod"),
    deployment("embed-azure", "azure", "embed-prod"),
    deployment("chat-azure-missing", "azure", "no-such-deployment"),
    deployment("chat-azure-badkey", "azure-badkey", "chat-prod"),
    deployment("chat-azure-oldversion", "azure-oldversion", "chat-prod"),
]
AZURE_ENV = {"AZURE_OPENAI_KEY": API_KEY, "AZURE_WRONG_KEY": "azure-wrong-key-not-a-secret"}


@pytest.fixture(scope="module")
def azure() -> Iterator[AzureOpenAIServer]:
    server = AzureOpenAIServer({"chat-prod": CHAT_MODEL, "embed-prod": EMBED_MODEL}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def azure_harness(
    database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
    azure: AzureOpenAIServer,
) -> Iterator[Harness]:
    base = suite_config(upstreams[0].url, upstreams[1].url, database_url)
    configured = [
        *base["upstreams"],
        tollhouse_upstream("azure", azure.url),
        tollhouse_upstream("azure-badkey", azure.url, api_key_env="AZURE_WRONG_KEY"),
        tollhouse_upstream("azure-oldversion", azure.url, api_version="2023-01-01"),
    ]
    with running_proxy(
        database_url,
        upstreams,
        analyzer,
        upstreams=configured,
        models=[*base["models"], *AZURE_MODELS],
        environ=AZURE_ENV,
    ) as running:
        yield running


@pytest.fixture
def proxy(azure_harness: Harness, azure: AzureOpenAIServer) -> Harness:
    azure.reset()
    return azure_harness


def only_request(azure: AzureOpenAIServer) -> Received:
    assert len(azure.received) == 1, azure.received
    return azure.received[0]


def assert_azure_wire(received: Received, deployment: str, operation: str) -> None:
    """The request went to the deployment URL, with the API version and the api-key."""
    assert received.path == f"/openai/deployments/{deployment}/{operation}"
    assert received.query == {"api-version": API_VERSION}
    assert received.headers["api-key"] == API_KEY
    assert "Authorization" not in received.headers


def server_usage(azure: AzureOpenAIServer, received: Received, chat: bool) -> dict[str, Any]:
    """The usage the fake resource reported for ``received`` (its answers are deterministic)."""
    body = {**received.body, "model": CHAT_MODEL}
    usage: dict[str, Any] = (azure.chat(body) if chat else azure.completion(body))["usage"]
    return usage


def assert_usage_recorded(record: AuditRecord, usage: dict[str, Any]) -> None:
    assert record.status == "ok" and record.usage_estimated is False
    assert (record.input_tokens, record.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )


def test_chat_goes_to_the_deployment_url_with_the_api_key(
    proxy: Harness, azure: AzureOpenAIServer
) -> None:
    raw = proxy.client().chat.completions.with_raw_response.create(
        model="chat-azure", messages=ASK, extra_headers={"traceparent": TRACEPARENT}
    )
    answer = raw.parse()
    received = only_request(azure)
    assert_azure_wire(received, "chat-prod", "chat/completions")
    assert received.headers["traceparent"] == TRACEPARENT
    assert received.body["model"] == "chat-prod"  # sent unchanged; Azure goes by the URL
    assert answer.model == CHAT_MODEL
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"
    usage = server_usage(azure, received, chat=True)
    assert answer.usage is not None and answer.usage.total_tokens == usage["total_tokens"]
    record = proxy.completed(raw.headers["x-request-id"])
    assert_usage_recorded(record, usage)
    assert (record.upstream, record.deployment_model, record.destination) == (
        "azure",
        "chat-prod",
        "external",
    )
    assert record.response_model == CHAT_MODEL
    assert record.attempts == [
        {**record.attempts[0], "outcome": "ok", "headers": {"x-ms-region": REGION}}
    ]


def test_streamed_chat_records_the_servers_usage(proxy: Harness, azure: AzureOpenAIServer) -> None:
    with proxy.client().chat.completions.with_streaming_response.create(
        model="chat-azure", messages=ASK, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    received = only_request(azure)
    assert_azure_wire(received, "chat-prod", "chat/completions")
    assert received.body["stream"] is True
    assert received.body["stream_options"] == {"include_usage": True}  # asked by Tollhouse
    expected = azure.chat({**received.body, "model": CHAT_MODEL})
    assert text == expected["choices"][0]["message"]["content"]
    assert finishes[-1] == "stop"
    record = proxy.completed(request_id)
    assert_usage_recorded(record, server_usage(azure, received, chat=True))
    assert record.stream and record.finish_reasons == ["stop"]
    assert record.attempts[0]["headers"] == {"x-ms-region": REGION}


def test_completions(proxy: Harness, azure: AzureOpenAIServer) -> None:
    raw = proxy.client().completions.with_raw_response.create(
        model="chat-azure", prompt="Once upon a synthetic time", max_tokens=5
    )
    answer = raw.parse()
    received = only_request(azure)
    assert_azure_wire(received, "chat-prod", "completions")
    assert answer.choices[0].text and answer.choices[0].finish_reason == "length"
    record = proxy.completed(raw.headers["x-request-id"])
    assert_usage_recorded(record, server_usage(azure, received, chat=False))


def test_embeddings(proxy: Harness, azure: AzureOpenAIServer) -> None:
    raw = proxy.client().embeddings.with_raw_response.create(
        model="embed-azure", input=["synthetic alpha", "synthetic beta"]
    )
    answer = raw.parse()
    received = only_request(azure)
    assert_azure_wire(received, "embed-prod", "embeddings")
    assert [e.index for e in answer.data] == [0, 1]
    assert answer.data[0].embedding == azure.embed("synthetic alpha", azure.embedding_dimensions)
    assert answer.model == EMBED_MODEL
    record = proxy.completed(raw.headers["x-request-id"])
    assert record.status == "ok" and record.input_tokens == answer.usage.prompt_tokens == 4


def test_429_waits_for_retry_after_ms_then_succeeds(
    proxy: Harness, azure: AzureOpenAIServer
) -> None:
    # Retry-After alone (30 s, beyond the 1 s cap) would give up at once: the
    # millisecond header is the one honoured.
    azure.inject(AzureFault("status", status=429, retry_after="30", retry_after_ms="250"))
    started = time.monotonic()
    raw = proxy.client().chat.completions.with_raw_response.create(model="chat-azure", messages=ASK)
    assert time.monotonic() - started >= 0.25
    assert raw.parse().choices[0].message.content
    assert len(azure.received) == 2
    record = proxy.completed(raw.headers["x-request-id"])
    assert [(a["outcome"], a["http_status"]) for a in record.attempts] == [
        ("upstream_http_429", 429),
        ("ok", 200),
    ]


def test_unknown_deployment_is_a_clear_error_and_not_retried(
    proxy: Harness, azure: AzureOpenAIServer
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        proxy.client().chat.completions.create(model="chat-azure-missing", messages=ASK)
    error = caught.value
    assert error.code == "DeploymentNotFound"
    assert "upstream azure answered 404" in error.message
    assert "deployment for this resource does not exist" in error.message
    assert only_request(azure).path == "/openai/deployments/no-such-deployment/chat/completions"
    assert error.request_id is not None
    record = proxy.completed(error.request_id)
    assert record.http_status == 404 and len(record.attempts) == 1


def test_content_filter_refusal_reaches_the_client_as_such(
    proxy: Harness, azure: AzureOpenAIServer
) -> None:
    azure.inject(AzureFault("content_filter"))
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.client().chat.completions.create(model="chat-azure", messages=ASK)
    error = caught.value
    assert error.code == "content_filter"
    assert "content management policy" in error.message and "filtered: violence" in error.message
    assert len(azure.received) == 1  # not retried
    assert error.request_id is not None
    record = proxy.completed(error.request_id)
    assert record.http_status == 400
    assert [a["outcome"] for a in record.attempts] == ["content_filter"]


@pytest.mark.parametrize("stream", [False, True])
def test_content_filter_finish_reason_passes_through(
    proxy: Harness, azure: AzureOpenAIServer, stream: bool
) -> None:
    azure.inject(AzureFault("filtered_answer"))
    client = proxy.client()
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model="chat-azure", messages=ASK, stream=True
        ) as response:
            request_id = response.headers["x-request-id"]
            chunks = [c for c in response.parse() if c.choices]
        finish = chunks[-1].choices[0].finish_reason
    else:
        raw = client.chat.completions.with_raw_response.create(model="chat-azure", messages=ASK)
        request_id = raw.headers["x-request-id"]
        finish = raw.parse().choices[0].finish_reason
    assert finish == "content_filter"
    record = proxy.completed(request_id)
    assert record.status == "ok" and record.finish_reasons == ["content_filter"]


def test_a_wrong_key_is_an_authentication_error_naming_the_upstream(
    proxy: Harness, azure: AzureOpenAIServer
) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        proxy.client().chat.completions.create(model="chat-azure-badkey", messages=ASK)
    assert "upstream azure-badkey answered 401" in caught.value.message
    assert caught.value.code == "upstream_http_401"
    assert only_request(azure).headers["api-key"] == "azure-wrong-key-not-a-secret"


def test_an_unsupported_api_version_is_a_bad_request(
    proxy: Harness, azure: AzureOpenAIServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.client().chat.completions.create(model="chat-azure-oldversion", messages=ASK)
    assert "API version not supported" in caught.value.message
    assert only_request(azure).query == {"api-version": "2023-01-01"}


AZURE_CONFIG = """
database_url: sqlite:///./x.db
upstreams:
  - name: azure-east
    kind: azure_openai
    base_url: "https://synthetic-resource.openai.azure.com/"
    api_version: "2024-10-21"
    destination: external
    api_key_env: AZURE_OPENAI_KEY
models:
  - name: chat-default
    deployments: [{upstream: azure-east, model: chat-prod}]
"""


def test_config_needs_an_api_version(tmp_path: Path) -> None:
    path = tmp_path / "tollhouse.yaml"
    env = {"AZURE_OPENAI_KEY": API_KEY}
    path.write_text(AZURE_CONFIG)
    settings = load_settings(path, env)
    assert settings.upstreams[0].api_version == "2024-10-21"
    assert settings.upstreams[0].base_url == "https://synthetic-resource.openai.azure.com"
    path.write_text(AZURE_CONFIG.replace('    api_version: "2024-10-21"\n', ""))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env)
    assert str(path) in caught.value.message
    assert "upstreams[0]" in caught.value.message
    assert "needs api_version" in caught.value.message
