"""OTLP transports: HTTP (``POST /v1/traces`` with a protobuf body) and gRPC (the
collector services' ``Export`` methods), both asynchronous on the proxy's event loop.

Which statuses are worth retrying follows the OTLP specification: HTTP 429, 502, 503
and 504, gRPC UNAVAILABLE, RESOURCE_EXHAUSTED and a few transient others.
"""

from __future__ import annotations

import gzip
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from proxy.telemetry.export import ExportError

if TYPE_CHECKING:
    import grpc.aio

_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
_GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}


class HttpTransport:
    """OTLP/HTTP with binary protobuf bodies, optionally gzip-compressed."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        compression: str = "none",
        certificate: str | None = None,
    ) -> None:
        self._urls = dict(urls)
        self._headers = {"Content-Type": "application/x-protobuf", **(headers or {})}
        self._gzip = compression == "gzip"
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ssl = ssl.create_default_context(cafile=certificate) if certificate else None
        self._session: aiohttp.ClientSession | None = None

    async def send(self, signal: str, payload: bytes) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self._urls[signal]
        body = gzip.compress(payload, compresslevel=5) if self._gzip else payload
        try:
            async with self._session.post(
                url, data=body, headers=self._headers, ssl=self._ssl or True
            ) as response:
                if response.status < 300:
                    await response.read()
                    return
                detail = (await response.read())[:200].decode("utf-8", "replace")
                raise ExportError(
                    f"{url} answered {response.status} {detail}".strip(),
                    retryable=response.status in _RETRYABLE_HTTP,
                )
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise ExportError(f"{url}: {type(exc).__name__} {exc}", retryable=True) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class GrpcTransport:
    """OTLP/gRPC: the encoded request goes out as the method's message bytes."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        compression: str = "none",
        certificate: str | None = None,
    ) -> None:
        self._target = endpoint.split("://", 1)[-1].rstrip("/")
        self._secure = endpoint.startswith("https://") or certificate is not None
        self._certificate = certificate
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self._timeout_s = timeout_s
        self._compression = compression
        self._channel: grpc.aio.Channel | None = None
        self._methods: dict[str, Any] = {}

    def _open(self) -> None:
        import grpc
        import grpc.aio

        compression = grpc.Compression.Gzip if self._compression == "gzip" else None
        if self._secure:
            roots = None
            if self._certificate is not None:
                roots = Path(self._certificate).read_bytes()
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.aio.secure_channel(
                self._target, credentials, compression=compression
            )
        else:
            self._channel = grpc.aio.insecure_channel(self._target, compression=compression)
        for signal, method in _GRPC_METHODS.items():
            # No (de)serializers: the request is already protobuf bytes, the reply unread.
            self._methods[signal] = self._channel.unary_unary(method)

    async def send(self, signal: str, payload: bytes) -> None:
        import grpc

        if self._channel is None:
            self._open()
        try:
            await self._methods[signal](
                payload, timeout=self._timeout_s, metadata=self._metadata or None
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            retryable = code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.OUT_OF_RANGE,
                grpc.StatusCode.DATA_LOSS,
            )
            raise ExportError(
                f"{self._target} {signal}: {code.name} {exc.details() or ''}".strip(),
                retryable=retryable,
            ) from exc

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
