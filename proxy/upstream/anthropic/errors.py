"""Anthropic's failures as Tollhouse's `UpstreamError`s.

Anthropic error bodies are ``{"type": "error", "error": {"type": ..., "message": ...}}``.
The mapping follows the OpenAI-compatible adapter so a client sees the same classes
whichever provider failed: 429, 529 (overloaded) and other 5xx are retryable and honour
``retry-after``; other 4xx are not. The Anthropic error ``type`` (``rate_limit_error``,
``overloaded_error``, ``invalid_request_error``, ...) is kept as the error's ``type`` and
the code says the upstream status (``upstream_http_529``), as for OpenAI upstreams
without a code of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from governance.errors import UpstreamError, UpstreamStatusError
from proxy.upstream.openai_compatible import error_fields, retry_after_s

# Mid-stream error types that are worth another attempt when nothing was sent yet.
_RETRYABLE_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error"})


def refused(upstream: str, message: str, *, param: str | None = None) -> UpstreamError:
    """A request this upstream cannot serve faithfully: 400, not retryable.

    An `UpstreamError` (rather than `InvalidRequestError`) so the router records the
    attempt and stops, and the failure names the upstream that could not serve it.
    """
    return UpstreamError(
        f"upstream {upstream} (Anthropic Messages API): {message}",
        status=400,
        type="invalid_request_error",
        code="unsupported_by_upstream",
        param=param,
        retryable=False,
    )


def status_error(
    upstream: str, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamStatusError:
    """The error for an HTTP answer with an error ``status``."""
    message, kind, _ = error_fields(body)
    retryable = status in (429, 529) or status >= 500
    return UpstreamStatusError(
        f"upstream {upstream} answered {status}: {message}",
        status=status if status < 500 else 502,
        type=kind or ("rate_limit_error" if status == 429 else None),
        code=f"upstream_http_{status}",
        retryable=retryable,
        retry_after_s=retry_after_s(headers.get("retry-after")),
        upstream_status=status,
    )


def stream_error(upstream: str, event: Mapping[str, Any]) -> UpstreamError:
    """The error an ``error`` event in a stream stands for (e.g. ``overloaded_error``)."""
    error = event.get("error")
    error = error if isinstance(error, Mapping) else {}
    kind = error.get("type") if isinstance(error.get("type"), str) else "api_error"
    message = str(error.get("message") or "no message")[:500]
    return UpstreamError(
        f"upstream {upstream} failed mid-stream ({kind}): {message}",
        type=kind,
        code="upstream_stream_error",
        retryable=kind in _RETRYABLE_TYPES,
    )
