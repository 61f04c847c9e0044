"""Building the process's tracer, meter and exporters from ``telemetry`` settings.

Spans leave through a `SpanBatcher` and metrics through a `MetricPusher`, both tasks on
the app's event loop started by `Telemetry.start`: a request only pays for recording.
Nothing here is global: everything belongs to the `Telemetry` object an app builds,
starts and closes, so several apps (tests) can live in one process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from importlib import metadata
from urllib.parse import urlsplit

from governance.config.schema import Settings
from governance.config.telemetry import TelemetryConfig
from governance.observability.scrub import Scrubber
from proxy.telemetry.export import (
    ConsoleWriter,
    MetricPusher,
    OtlpWriter,
    SpanBatcher,
    Transport,
    Writer,
)
from proxy.telemetry.instruments import Instruments
from proxy.telemetry.metrics import Meter
from proxy.telemetry.otlp import Encoder
from proxy.telemetry.spans import Sampler, Tracer
from proxy.telemetry.transport import GrpcTransport, HttpTransport

SCOPE = "tollhouse.proxy"


def _version() -> str:
    try:
        return metadata.version("tollhouse")
    except metadata.PackageNotFoundError:
        return "unknown"


__version__ = _version()


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    """What the conventions say about an upstream: its provider and network address."""

    provider: str
    address: str
    port: int

    @classmethod
    def of(cls, base_url: str, provider: str) -> UpstreamIdentity:
        parts = urlsplit(base_url)
        default = 443 if parts.scheme == "https" else 80
        return cls(provider, parts.hostname or "", parts.port or default)


@dataclass(slots=True)
class Telemetry:
    """The tracer, the instruments and their exporters; built once per app."""

    tracer: Tracer
    instruments: Instruments
    meter: Meter
    tracing: bool = False
    metering: bool = False
    capture_content: bool = False
    upstreams: dict[str, UpstreamIdentity] = field(default_factory=dict)
    aliases: frozenset[str] = frozenset()
    prometheus: bool = False
    batcher: SpanBatcher | None = None
    pusher: MetricPusher | None = None
    _writers: list[Writer] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def disabled(cls, settings: Settings | None = None) -> Telemetry:
        meter = Meter()
        telemetry = cls(Tracer(), Instruments(meter), meter)
        if settings is not None:
            telemetry.describe(settings)
        return telemetry

    def describe(self, settings: Settings) -> None:
        self.upstreams = {
            u.name: UpstreamIdentity.of(u.base_url, u.provider_name) for u in settings.upstreams
        }
        self.aliases = frozenset(m.name for m in settings.models)

    def start(self) -> None:
        """Start the exporters' tasks on the running loop (the app's lifespan does)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        if self.batcher is not None:
            self.batcher.start()
        if self.pusher is not None:
            self.pusher.start()

    async def aflush(self) -> None:
        if self.batcher is not None:
            await self.batcher.flush()
        if self.pusher is not None:
            await self.pusher.flush()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Export everything recorded so far, from a thread other than the app's loop
        (tests; closing the app does it too)."""
        if self._loop is None or self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.aflush(), self._loop).result(timeout_s)

    async def aclose(self) -> None:
        """Export what is left and close the exporters (the app's lifespan does)."""
        if self.batcher is not None:
            await self.batcher.close()
        if self.pusher is not None:
            await self.pusher.close()
        for writer in self._writers:
            await writer.close()
        self._loop = None


def build_telemetry(
    settings: Settings, scrubber: Scrubber, *, transport: Transport | None = None
) -> Telemetry:
    """The process's telemetry per ``settings.telemetry``; ``transport`` replaces the
    OTLP transport the settings name (tests: one that keeps what it is sent)."""
    config = settings.telemetry
    resource = {
        **config.resource_attributes,
        "service.name": config.service_name,
        "service.version": __version__,
    }
    meter = Meter()
    writers: dict[str, Writer] = {}
    for signal, chosen in (("traces", config.traces), ("metrics", config.metrics)):
        if chosen == "console":
            writers[signal] = ConsoleWriter(resource)
        elif chosen == "otlp":
            writers[signal] = OtlpWriter(
                Encoder(resource, SCOPE, __version__), transport or _transport(config)
            )
    batcher = None
    tracer = Tracer()
    if "traces" in writers:
        batcher = SpanBatcher(writers["traces"], scrubber)
        tracer = Tracer(batcher.enqueue, Sampler(config.sampler, config.sampler_ratio))
    pusher = None
    if "metrics" in writers:
        pusher = MetricPusher(meter, writers["metrics"], config.metric_export_interval_s)
    telemetry = Telemetry(
        tracer,
        Instruments(meter),
        meter,
        tracing=batcher is not None,
        metering=pusher is not None or config.prometheus,
        capture_content=config.capture_content,
        prometheus=config.prometheus,
        batcher=batcher,
        pusher=pusher,
        _writers=list({id(w): w for w in writers.values()}.values()),
    )
    telemetry.describe(settings)
    return telemetry


def _transport(config: TelemetryConfig) -> Transport:
    if config.protocol == "grpc":
        return GrpcTransport(
            config.otlp_endpoint or "http://localhost:4317",
            headers=config.headers,
            timeout_s=config.timeout_s,
            compression=config.compression,
            certificate=config.certificate,
        )
    base = (config.otlp_endpoint or "http://localhost:4318").rstrip("/")
    urls = {
        "traces": config.traces_endpoint or f"{base}/v1/traces",
        "metrics": config.metrics_endpoint or f"{base}/v1/metrics",
    }
    return HttpTransport(
        urls,
        headers=config.headers,
        timeout_s=config.timeout_s,
        compression=config.compression,
        certificate=config.certificate,
    )
