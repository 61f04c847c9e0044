"""Adapter for OpenAI-compatible servers: vLLM, OpenAI itself and the many lookalikes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from yarl import URL

from governance.config.schema import Destination, UpstreamConfig
from governance.errors import (
    UpstreamProtocolError,
    UpstreamStatusError,
)
from proxy.upstream.adapter import JsonReply
from proxy.upstream.pool import UpstreamPool, read_json_object, transport_error
from proxy.upstream.sse import SSEDecoder

_DONE = b"[DONE]"


class OpenAICompatibleAdapter:
    """One pooled HTTP client per upstream; errors mapped to Tollhouse's hierarchy."""

    def __init__(self, config: UpstreamConfig, api_key: str | None) -> None:
        self.name = config.name
        self.destination: Destination = config.destination
        self._base_url = config.base_url
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._pool = UpstreamPool(config)
        self._targets: dict[str, URL] = {}  # parsed once: aiohttp would parse every time

    async def close(self) -> None:
        await self._pool.close()

    async def _post(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None
    ) -> aiohttp.ClientResponse:
        try:
            response = await self._pool.client().post(
                self._target(self._url(path, body)),
                data=orjson.dumps(body),
                headers={**self._headers, **headers} if headers else self._headers,
            )
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise transport_error(exc, self.name, "connecting") from exc
        if response.status >= 400:
            try:
                await self._raise_for_status(response)
            finally:
                response.release()
        return response

    def _target(self, url: str) -> URL:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = URL(url)
        return target

    def _url(self, path: str, body: Mapping[str, Any]) -> str:
        """Where an OpenAI ``path`` is sent (the hook a dialect with other URLs overrides)."""
        return self._base_url + path

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        try:
            body = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        raise self._status_error(response.status, response.headers, body)

    def _status_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamStatusError:
        """The error for an answer with an error ``status`` (a dialect's error bodies differ)."""
        message, kind, code = error_fields(body)
        retry_after = retry_after_s(headers.get("Retry-After"))
        retryable = status == 429 or status >= 500
        return UpstreamStatusError(
            f"upstream {self.name} answered {status}: {message}",
            status=status if status < 500 else 502,
            type=kind or ("rate_limit_error" if status == 429 else None),
            code=code or f"upstream_http_{status}",
            retryable=retryable,
            retry_after_s=retry_after,
            upstream_status=status,
        )

    async def call(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> JsonReply:
        response = await self._post(path, body, headers)
        payload, raw = await read_json_object(response, self.name)
        return JsonReply(payload=payload, raw=raw, watched_headers=self._pool.watched(response))

    async def open_stream(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> _SSEStream:
        response = await self._post(path, body, headers)
        return _SSEStream(self.name, response, self._pool.watched(response))


class _SSEStream:
    def __init__(
        self, upstream: str, response: aiohttp.ClientResponse, watched_headers: dict[str, str]
    ) -> None:
        self._upstream = upstream
        self._response = response
        self.watched_headers = watched_headers

    async def events(self) -> AsyncIterator[bytes]:
        decoder = SSEDecoder()
        try:
            async for chunk in self._response.content.iter_any():
                for data in decoder.feed(chunk):
                    if data == _DONE:
                        return
                    yield data
        except (aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, self._upstream, "mid-stream") from exc
        raise UpstreamProtocolError(f"upstream {self._upstream}: stream ended without [DONE]")

    async def close(self) -> None:
        self._response.close()


def error_fields(body: bytes) -> tuple[str, str | None, str | None]:
    """``(message, type, code)`` of an OpenAI-style error body, whatever its shape."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return (body[:200].decode("utf-8", "replace") or "no error body"), None, None
    error = parsed.get("error", parsed) if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or "no message"
        kind = error.get("type")
        code = error.get("code")
        return (
            str(message)[:500],
            kind if isinstance(kind, str) else None,
            str(code) if code is not None else None,
        )
    if isinstance(error, str):
        return error[:500], None, None
    return "no message", None, None


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` value (delta-seconds or an HTTP date) asks to wait."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
