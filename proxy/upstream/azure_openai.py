"""Adapter for Azure OpenAI: OpenAI's protocol behind deployment URLs and an ``api-key``.

Azure serves the OpenAI request and answer shapes (plus content-filter annotations, which
pass through), so this adapter is the OpenAI-compatible one with three differences:

- the URL names the deployment and the API version:
  ``{base_url}/openai/deployments/{deployment}{path}?api-version={api_version}``, where
  ``base_url`` is the resource endpoint (``https://<resource>.openai.azure.com``) and the
  deployment is the body's ``model`` (``models[].deployments[].model`` in the config);
- the key goes in an ``api-key`` header, never ``Authorization``;
- errors: Azure repeats the HTTP status as the error ``code`` ("429", "401"), which is
  replaced by the ``upstream_http_<status>`` code a bare OpenAI-compatible error gets, so
  clients see the same codes whichever provider failed; its millisecond
  ``retry-after-ms`` wins over the whole-second ``Retry-After``; a ``content_filter``
  refusal keeps its code and names the filtered categories.

The body is sent unchanged, ``model`` included: Azure ignores it in favour of the URL's
deployment, and leaving it costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from governance.config.schema import UpstreamConfig
from governance.errors import UpstreamStatusError
from proxy.upstream.openai_compatible import OpenAICompatibleAdapter

_MS_HEADERS = ("retry-after-ms", "x-ms-retry-after-ms")
CONTENT_FILTER = "content_filter"


class AzureOpenAIAdapter(OpenAICompatibleAdapter):
    """An Azure OpenAI resource; the OpenAI-compatible transport, streams and errors."""

    def __init__(self, config: UpstreamConfig, api_key: str | None) -> None:
        super().__init__(config, None)  # no Authorization header
        if config.api_version is None:  # the config's validation requires it: a bug here
            raise ValueError(f"upstream {config.name}: azure_openai needs api_version")
        if api_key:
            self._headers["api-key"] = api_key
        self._deployments = f"{config.base_url}/openai/deployments/"
        self._query = "?" + urlencode({"api-version": config.api_version})

    def _url(self, path: str, body: Mapping[str, Any]) -> str:
        deployment = quote(str(body["model"]), safe="")
        return f"{self._deployments}{deployment}{path}{self._query}"

    def _status_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamStatusError:
        base = super()._status_error(status, headers, body)
        code = base.code
        if code is None or code.isdigit():  # Azure's code "429" is only the status again
            code = f"upstream_http_{status}"
        message = base.message
        if code == CONTENT_FILTER:
            categories = _filtered_categories(body)
            if categories:
                message += f" (filtered: {', '.join(categories)})"
        retry_after = _retry_after_ms(headers)
        return UpstreamStatusError(
            message,
            status=base.status,
            type=base.type,
            code=code,
            retryable=base.retryable,
            retry_after_s=base.retry_after_s if retry_after is None else retry_after,
            upstream_status=status,
        )


def _retry_after_ms(headers: Mapping[str, str]) -> float | None:
    """Seconds from Azure's ``retry-after-ms`` (or ``x-ms-retry-after-ms``), if sent."""
    for name in _MS_HEADERS:
        value = headers.get(name)
        if not value:
            continue
        try:
            milliseconds = float(value)
        except ValueError:
            continue
        if math.isfinite(milliseconds):
            return max(0.0, milliseconds / 1000)
    return None


def _filtered_categories(body: bytes) -> list[str]:
    """The categories Azure's content filter blocked, from a ``content_filter`` error."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    error = parsed.get("error") if isinstance(parsed, dict) else None
    inner = error.get("innererror") if isinstance(error, dict) else None
    result = inner.get("content_filter_result") if isinstance(inner, dict) else None
    if not isinstance(result, dict):
        return []
    return sorted(
        name
        for name, verdict in result.items()
        if isinstance(verdict, dict) and verdict.get("filtered") is True
    )
