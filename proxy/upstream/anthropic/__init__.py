"""The Anthropic Messages API as an upstream: OpenAI chat in, OpenAI chat out."""

from proxy.upstream.anthropic.adapter import AnthropicAdapter

__all__ = ["AnthropicAdapter"]
