"""Which adapter class speaks which upstream dialect (``upstreams[].kind``).

Adding a provider is a new adapter module and one line here; no route, the pipeline or
the router changes.
"""

from __future__ import annotations

from collections.abc import Callable

from governance.config.schema import UpstreamConfig
from proxy.upstream.adapter import UpstreamAdapter
from proxy.upstream.anthropic import AnthropicAdapter
from proxy.upstream.azure_openai import AzureOpenAIAdapter
from proxy.upstream.openai_compatible import OpenAICompatibleAdapter

AdapterFactory = Callable[[UpstreamConfig, str | None], UpstreamAdapter]


def _factories() -> dict[str, AdapterFactory]:
    return {
        "openai_compatible": OpenAICompatibleAdapter,
        "azure_openai": AzureOpenAIAdapter,
        "anthropic": AnthropicAdapter,
    }


def build_adapter(config: UpstreamConfig, api_key: str | None) -> UpstreamAdapter:
    """The adapter for one configured upstream (``api_key``: its resolved secret)."""
    factory = _factories().get(config.kind)
    if factory is None:  # the settings' Literal and this table disagree: a bug here
        raise NotImplementedError(f"no adapter for upstream kind {config.kind!r}")
    return factory(config, api_key)
