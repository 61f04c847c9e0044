"""The HTTP side every adapter shares: one pooled aiohttp session per upstream, opened on
first use, with the upstream's timeouts; the watched response headers; reading a JSON
answer; and network failures mapped to Tollhouse's errors."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from governance.config.schema import UpstreamConfig
from governance.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRefusedError,
    UpstreamTimeoutError,
)


class UpstreamPool:
    def __init__(self, config: UpstreamConfig) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout_s, sock_read=config.timeout_s
        )
        self._limit = config.max_connections
        self._watch = tuple(h.lower() for h in config.fingerprint_headers)
        self._session: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def watched(self, response: aiohttp.ClientResponse) -> dict[str, str]:
        """The upstream's ``fingerprint_headers`` present in ``response`` (values capped)."""
        if not self._watch:
            return {}
        return {h: response.headers[h][:256] for h in self._watch if h in response.headers}


async def read_json_object(
    response: aiohttp.ClientResponse, upstream: str
) -> tuple[dict[str, Any], bytes]:
    """A complete answer's JSON object and its bytes; the response is released."""
    try:
        raw = await response.read()
    except (aiohttp.ClientError, OSError) as exc:
        raise transport_error(exc, upstream, "reading the answer") from exc
    finally:
        response.release()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"upstream {upstream}: answer is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise UpstreamProtocolError(f"upstream {upstream}: answer is not a JSON object")
    return payload, raw


def transport_error(exc: BaseException, upstream: str, phase: str) -> UpstreamError:
    """Map a network failure to Tollhouse's errors.

    A connect timeout or refused/reset connection is retryable (the request may not have
    been processed); a read timeout is not (the upstream may still be working on it).
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamRefusedError(f"upstream {upstream}: connect timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamRefusedError(f"upstream {upstream}: cannot connect ({exc.os_error})")
    if isinstance(exc, TimeoutError):  # includes aiohttp's SocketTimeoutError
        return UpstreamTimeoutError(f"upstream {upstream}: read timed out {phase}")
    return UpstreamConnectError(
        f"upstream {upstream}: connection lost {phase} ({type(exc).__name__})"
    )
