"""Upstream adapters: how Tollhouse talks to model servers."""

from proxy.upstream.adapter import EventStream, JsonReply, UpstreamAdapter
from proxy.upstream.openai_compatible import OpenAICompatibleAdapter

__all__ = ["EventStream", "JsonReply", "OpenAICompatibleAdapter", "UpstreamAdapter"]
