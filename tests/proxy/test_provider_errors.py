"""The same upstream failure reaches the client the same way, whichever provider failed.

Each failure is driven through every provider's loopback fake behind one Tollhouse; the
client must see the same error class and status, the same OpenAI error shape
(``message``/``type``/``param``/``code``, the message naming the upstream), and the
audit trail the same retries. A provider is added by appending to `PROVIDERS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import openai
import pytest

from governance.pii import TextAnalyzer
from tests.proxy.conftest import Harness, running_proxy, suite_config
from tests.upstream.anthropic_server import AnthropicServer, Scripted
from tests.upstream.azure_server import (
    API_KEY,
    AzureFault,
    AzureOpenAIServer,
    tollhouse_upstream,
)
from tests.upstream.faulty import Fault, FaultyUpstream

ASK = [{"role": "user", "content": "Is the synthetic service up?"}]


@dataclass(frozen=True)
class Failure:
    """An upstream failure and what the client must see for it, from any provider."""

    name: str
    status: int  # what the upstream answers
    retry_after_s: float | None
    client_error: type[openai.APIStatusError]
    client_status: int
    attempts: int  # retryable failures use up the deployment's 2 attempts (suite_config)


FAILURES = [
    Failure("rate_limited", 429, 0.05, openai.RateLimitError, 429, 2),
    Failure("unavailable", 503, None, openai.InternalServerError, 502, 2),
    Failure("invalid_request", 400, None, openai.BadRequestError, 400, 1),
    Failure("unauthorised", 401, None, openai.AuthenticationError, 401, 1),
]


class Provider(Protocol):
    """One provider's fake upstream, as configured behind the proxy."""

    upstream: str  # its upstreams[].name
    model: str  # the model alias routed only to it

    def fail(self, failure: Failure) -> None:
        """Answer the next ``failure.attempts`` requests with ``failure``, in the
        provider's own dialect."""

    def requests(self) -> int: ...

    def reset(self) -> None: ...


class OpenAICompatibleFake:
    upstream = "alpha"
    model = "chat-default"

    def __init__(self, server: FaultyUpstream) -> None:
        self.server = server

    def fail(self, failure: Failure) -> None:
        retry_after = None if failure.retry_after_s is None else str(failure.retry_after_s)
        self.server.inject(
            Fault("status", status=failure.status, retry_after=retry_after, times=failure.attempts)
        )

    def requests(self) -> int:
        return len(self.server.received)

    def reset(self) -> None:
        self.server.reset()


class AzureFake:
    upstream = "azure"
    model = "chat-azure"

    def __init__(self, server: AzureOpenAIServer) -> None:
        self.server = server

    def fail(self, failure: Failure) -> None:
        seconds = failure.retry_after_s
        self.server.inject(
            AzureFault(  # Azure sends both headers; the millisecond one is the precise one
                "status",
                status=failure.status,
                retry_after=None if seconds is None else str(seconds),
                retry_after_ms=None if seconds is None else str(round(seconds * 1000)),
                times=failure.attempts,
            )
        )

    def requests(self) -> int:
        return len(self.server.received)

    def reset(self) -> None:
        self.server.reset()


class AnthropicFake:
    upstream = "anthropic"
    model = "chat-anthropic"
    # Anthropic's error types by status (its API reference); 503 is not listed there, so
    # the generic api_error.
    TYPES = {429: "rate_limit_error", 400: "invalid_request_error", 401: "authentication_error"}

    def __init__(self, server: AnthropicServer) -> None:
        self.server = server

    def fail(self, failure: Failure) -> None:
        seconds = failure.retry_after_s
        self.server.script(
            Scripted(
                status=failure.status,
                error_type=self.TYPES.get(failure.status, "api_error"),
                retry_after=None if seconds is None else str(seconds),
                times=failure.attempts,
            )
        )

    def requests(self) -> int:
        return len(self.server.received)

    def reset(self) -> None:
        self.server.reset()


@dataclass
class Providers:
    harness: Harness
    all: list[Provider]


@pytest.fixture(scope="module")
def providers(
    database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> Iterator[Providers]:
    azure = AzureOpenAIServer({"chat-prod": "gpt-4o-2024-08-06"}).start()
    anthropic = AnthropicServer().start()
    base = suite_config(upstreams[0].url, upstreams[1].url, database_url)
    configured: list[dict[str, Any]] = [
        *base["upstreams"],
        tollhouse_upstream("azure", azure.url),
        {
            "name": "anthropic",
            "kind": "anthropic",
            "base_url": anthropic.base_url,
            "api_key_env": "ALPHA_KEY",
            "destination": "external",
            "timeout_s": 2.0,
            "connect_timeout_s": 1.0,
        },
    ]
    models = [
        *base["models"],
        {"name": "chat-azure", "deployments": [{"upstream": "azure", "model": "chat-prod"}]},
        {
            "name": "chat-anthropic",
            "deployments": [{"upstream": "anthropic", "model": "claude-test-1"}],
        },
    ]
    environ = {"AZURE_OPENAI_KEY": API_KEY}
    all_providers: list[Provider] = [
        OpenAICompatibleFake(upstreams[0]),
        AzureFake(azure),
        AnthropicFake(anthropic),
    ]
    try:
        with running_proxy(
            database_url,
            upstreams,
            analyzer,
            upstreams=configured,
            models=models,
            environ=environ,
        ) as harness:
            yield Providers(harness, all_providers)
    finally:
        azure.stop()
        anthropic.stop()


def observed(harness: Harness, provider: Provider, failure: Failure) -> dict[str, Any]:
    """What the client and the audit trail saw when ``provider`` failed with ``failure``."""
    provider.reset()
    provider.fail(failure)
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            harness.client().chat.completions.create(model=provider.model, messages=ASK)
        requests = provider.requests()
    finally:
        provider.reset()  # the upstreams are shared with other modules: leave no faults
    error = caught.value
    body = error.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}, body
    assert isinstance(body["type"], str) and body["type"], body
    assert isinstance(body["code"], str) and body["code"], body
    assert body["message"].startswith(f"upstream {provider.upstream} answered {failure.status}")
    assert error.request_id is not None
    record = harness.completed(error.request_id)
    assert {a["outcome"] for a in record.attempts} == {body["code"]}
    assert record.http_status == failure.client_status
    return {
        "error_class": type(error),
        "status": error.status_code,
        "attempts": [
            (a["upstream"] == provider.upstream, a["http_status"]) for a in record.attempts
        ],
        "requests": requests,
    }


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: f.name)
def test_every_provider_fails_the_same_way(providers: Providers, failure: Failure) -> None:
    expected = {
        "error_class": failure.client_error,
        "status": failure.client_status,
        "attempts": [(True, failure.status)] * failure.attempts,
        "requests": failure.attempts,
    }
    seen = {p.upstream: observed(providers.harness, p, failure) for p in providers.all}
    assert seen == {p.upstream: expected for p in providers.all}
