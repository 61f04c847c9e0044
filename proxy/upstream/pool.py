"""The HTTP side every adapter shares: one pooled aiohttp session per upstream, opened on
first use, with the upstream's timeouts, and the watched response headers."""

from __future__ import annotations

import aiohttp

from governance.config.schema import UpstreamConfig


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
