"""`AnthropicAdapter`: ``kind: anthropic`` upstreams, spoken to in the Messages API.

Only chat completions exist there: ``/completions`` and ``/embeddings`` are refused
with a 400 naming the upstream and the endpoint. Requests go to
``{base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version`` (the
upstream's ``api_version``, default `ANTHROPIC_VERSION`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from governance.config.schema import Destination, UpstreamConfig
from governance.errors import UpstreamProtocolError
from proxy.upstream.adapter import JsonReply
from proxy.upstream.anthropic.errors import refused, status_error
from proxy.upstream.anthropic.request import to_messages_request
from proxy.upstream.anthropic.response import to_chat_completion
from proxy.upstream.anthropic.stream import ChunkTranslator
from proxy.upstream.pool import UpstreamPool, read_json_object, transport_error
from proxy.upstream.sse import SSEDecoder

ANTHROPIC_VERSION = "2023-06-01"
_CHAT = "/chat/completions"


class AnthropicAdapter:
    """One pooled HTTP client per upstream; OpenAI chat translated both ways."""

    def __init__(self, config: UpstreamConfig, api_key: str | None) -> None:
        self.name = config.name
        self.destination: Destination = config.destination
        self._url = config.base_url + "/v1/messages"
        self._headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": config.api_version or ANTHROPIC_VERSION,
        }
        if api_key:
            self._headers["x-api-key"] = api_key
        self._pool = UpstreamPool(config)

    async def close(self) -> None:
        await self._pool.close()

    async def call(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> JsonReply:
        request = self._translate(path, {**body, "stream": False})
        response = await self._post(request, headers)
        message, _ = await read_json_object(response, self.name)
        payload = to_chat_completion(self.name, message)
        return JsonReply(
            payload=payload, raw=orjson.dumps(payload), watched_headers=self._pool.watched(response)
        )

    async def open_stream(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> MessagesStream:
        request = self._translate(path, {**body, "stream": True})
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        response = await self._post(request, headers)
        translator = ChunkTranslator(self.name, include_usage)
        return MessagesStream(self.name, response, translator, self._pool.watched(response))

    def _translate(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path != _CHAT:
            endpoint = path.lstrip("/")
            raise refused(self.name, f"the {endpoint} endpoint is not offered (chat only)")
        return to_messages_request(self.name, body)

    async def _post(
        self, request: dict[str, Any], headers: Mapping[str, str] | None
    ) -> aiohttp.ClientResponse:
        try:
            response = await self._pool.client().post(
                self._url,
                data=orjson.dumps(request),
                headers={**self._headers, **headers} if headers else self._headers,
            )
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise transport_error(exc, self.name, "connecting") from exc
        if response.status >= 400:
            try:
                try:
                    error_body = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    error_body = b""
                raise status_error(self.name, response.status, response.headers, error_body)
            finally:
                response.release()
        return response


class MessagesStream:
    """A streamed Messages answer, yielded as OpenAI chunk payloads."""

    def __init__(
        self,
        upstream: str,
        response: aiohttp.ClientResponse,
        translator: ChunkTranslator,
        watched_headers: dict[str, str],
    ) -> None:
        self._upstream = upstream
        self._response = response
        self._translator = translator
        self.watched_headers = watched_headers

    async def events(self) -> AsyncIterator[bytes]:
        decoder = SSEDecoder()
        translator = self._translator
        try:
            async for piece in self._response.content.iter_any():
                for data in decoder.feed(piece):
                    for chunk in translator.translate(self._event(data)):
                        yield chunk
                    if translator.stopped:
                        return
        except (aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, self._upstream, "mid-stream") from exc
        raise UpstreamProtocolError(f"upstream {self._upstream}: stream ended without message_stop")

    def _event(self, data: bytes) -> dict[str, Any]:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                f"upstream {self._upstream}: a stream event is not valid JSON"
            ) from exc
        if not isinstance(event, dict):
            raise UpstreamProtocolError(
                f"upstream {self._upstream}: a stream event is not an object"
            )
        return event

    async def close(self) -> None:
        self._response.close()
