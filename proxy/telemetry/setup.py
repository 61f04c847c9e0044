"""Building the process's tracer and meter from ``telemetry`` settings.

Spans leave through a `BatchSpanProcessor` and pushed metrics through a
`PeriodicExportingMetricReader`: both export on their own thread, so a request only
pays for recording. Every exported span passes the `Scrubber` first. Nothing here is
global: the providers belong to the `Telemetry` object the app builds and shuts down,
so several apps (tests) can live in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.trace import NoOpTracer, Tracer

from governance.config.schema import Settings, TelemetryConfig
from governance.observability.scrub import Scrubber
from proxy.telemetry import semconv as sc
from proxy.telemetry.instruments import Instruments

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.metrics.view import View
    from opentelemetry.sdk.trace.export import SpanExporter
    from prometheus_client import CollectorRegistry

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
    """The tracer, the instruments and what to shut down; built once per app."""

    tracer: Tracer
    instruments: Instruments
    tracing: bool = False
    metering: bool = False
    capture_content: bool = False
    upstreams: dict[str, UpstreamIdentity] = field(default_factory=dict)
    aliases: frozenset[str] = frozenset()
    prometheus: CollectorRegistry | None = None
    _providers: list[object] = field(default_factory=list)

    @classmethod
    def disabled(cls, settings: Settings | None = None) -> Telemetry:
        telemetry = cls(NoOpTracer(), Instruments(NoOpMeter(SCOPE)))
        if settings is not None:
            telemetry.describe(settings)
        return telemetry

    def describe(self, settings: Settings) -> None:
        self.upstreams = {
            u.name: UpstreamIdentity.of(u.base_url, u.provider_name) for u in settings.upstreams
        }
        self.aliases = frozenset(m.name for m in settings.models)

    def flush(self, timeout_ms: int = 10_000) -> None:
        """Export everything recorded so far (tests; shutdown does it too)."""
        for provider in self._providers:
            provider.force_flush(timeout_ms)  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        for provider in self._providers:
            provider.shutdown()  # type: ignore[attr-defined]
        self._providers.clear()


def build_telemetry(
    settings: Settings,
    scrubber: Scrubber,
    *,
    span_exporter: SpanExporter | None = None,
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """The process's telemetry per ``settings.telemetry``; ``span_exporter`` and
    ``metric_readers`` are added to (tests: in-memory ones) whatever the settings ask."""
    config = settings.telemetry
    exporter = span_exporter or _span_exporter(config)
    readers = [*metric_readers, *_metric_readers(config)]
    registry = None
    if config.prometheus:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=True)
        readers.append(PrometheusMetricReader(registry=registry))
    if exporter is None and not readers:
        return Telemetry.disabled(settings)

    from opentelemetry.sdk.resources import Resource

    resource = Resource.create(
        {"service.name": config.service_name, "service.version": __version__}
    )
    providers: list[object] = []
    tracer: Tracer = NoOpTracer()
    if exporter is not None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from proxy.telemetry.export import ScrubbingSpanExporter

        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(
            BatchSpanProcessor(ScrubbingSpanExporter(exporter, scrubber))
        )
        tracer = tracer_provider.get_tracer(SCOPE, __version__)
        providers.append(tracer_provider)
    meter: Meter = NoOpMeter(SCOPE)
    if readers:
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider

        # No exemplars: offering every measurement taken inside a sampled span to the
        # reservoirs doubled the cost of recording a histogram value.
        meter_provider = MeterProvider(
            metric_readers=readers,
            resource=resource,
            views=_views(),
            exemplar_filter=AlwaysOffExemplarFilter(),
        )
        meter = meter_provider.get_meter(SCOPE, __version__)
        providers.append(meter_provider)
    telemetry = Telemetry(
        tracer,
        Instruments(meter),
        tracing=exporter is not None,
        metering=bool(readers),
        capture_content=config.capture_content,
        prometheus=registry,
        _providers=providers,
    )
    telemetry.describe(settings)
    return telemetry


def _span_exporter(config: TelemetryConfig) -> SpanExporter | None:
    if config.traces == "none":
        return None
    if config.traces == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    base = config.otlp_endpoint
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        insecure = None if base is None else base.startswith("http://")
        return GrpcSpanExporter(endpoint=base, insecure=insecure)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=None if base is None else f"{base.rstrip('/')}/v1/traces")


def _metric_readers(config: TelemetryConfig) -> list[MetricReader]:
    if config.metrics == "none":
        return []
    from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader

    exporter: MetricExporter
    base = config.otlp_endpoint
    if config.metrics == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        exporter = ConsoleMetricExporter()
    elif config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        insecure = None if base is None else base.startswith("http://")
        exporter = GrpcMetricExporter(endpoint=base, insecure=insecure)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        endpoint = None if base is None else f"{base.rstrip('/')}/v1/metrics"
        exporter = OTLPMetricExporter(endpoint=endpoint)
    interval_ms = config.metric_export_interval_s * 1000
    return [PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)]


def _views() -> list[View]:
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    buckets = {
        sc.METRIC_TOKEN_USAGE: sc.TOKEN_BUCKETS,
        sc.METRIC_OPERATION_DURATION: sc.DURATION_BUCKETS_S,
        sc.METRIC_TIME_TO_FIRST_CHUNK: sc.DURATION_BUCKETS_S,
        sc.METRIC_HTTP_DURATION: sc.FAST_BUCKETS_S,
        sc.METRIC_AUDIT_WRITE: sc.FAST_BUCKETS_S,
    }
    return [
        View(
            instrument_name=name,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=[float(b) for b in bounds]),
        )
        for name, bounds in buckets.items()
    ]
