"""The ``telemetry`` section: where traces and metrics go and how (docs/observability.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SamplerName = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]
"""The OpenTelemetry sampler names Tollhouse implements (``OTEL_TRACES_SAMPLER``)."""


class TelemetryConfig(_Strict):
    """OpenTelemetry traces and metrics (docs/observability.md).

    The standard ``OTEL_*`` environment variables override these fields (the loader
    applies them, docs/observability.md lists which).
    """

    service_name: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        default="tollhouse", description="service.name of the resource (OTEL_SERVICE_NAME)"
    )
    traces: Literal["none", "otlp", "console"] = Field(
        default="none", description="where spans go (OTEL_TRACES_EXPORTER)"
    )
    metrics: Literal["none", "otlp", "console"] = Field(
        default="none", description="where metrics are pushed (OTEL_METRICS_EXPORTER)"
    )
    protocol: Literal["http/protobuf", "grpc"] = Field(
        default="http/protobuf", description="OTLP transport (OTEL_EXPORTER_OTLP_PROTOCOL)"
    )
    otlp_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+.*$",
        description="OTLP base URL, e.g. http://collector:4318 (OTEL_EXPORTER_OTLP_ENDPOINT); "
        "none: the exporter's default or per-signal variables",
    )
    traces_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+.*$",
        description="full URL for spans, over otlp_endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)",
    )
    metrics_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+.*$",
        description="full URL for metrics (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)",
    )
    headers: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")],
        Annotated[str, Field(max_length=4096)],
    ] = Field(
        default_factory=dict,
        max_length=32,
        description="extra headers on every export, e.g. a collector's API key "
        "(OTEL_EXPORTER_OTLP_HEADERS; keep secrets in the environment, not the file)",
    )
    resource_attributes: dict[
        Annotated[str, Field(min_length=1, max_length=128)],
        Annotated[str, Field(max_length=1024)],
    ] = Field(
        default_factory=dict,
        max_length=64,
        description="extra resource attributes, e.g. deployment.environment "
        "(OTEL_RESOURCE_ATTRIBUTES); service.name comes from service_name",
    )
    timeout_s: float = Field(
        default=10.0, gt=0, description="one export's time limit (OTEL_EXPORTER_OTLP_TIMEOUT)"
    )
    compression: Literal["none", "gzip"] = Field(
        default="none", description="export compression (OTEL_EXPORTER_OTLP_COMPRESSION)"
    )
    certificate: str | None = Field(
        default=None,
        description="CA bundle that signs the collector's TLS certificate "
        "(OTEL_EXPORTER_OTLP_CERTIFICATE)",
    )
    sampler: SamplerName = Field(
        default="parentbased_always_on",
        description="which traces are recorded (OTEL_TRACES_SAMPLER)",
    )
    sampler_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="share of traces the traceidratio samplers keep (OTEL_TRACES_SAMPLER_ARG)",
    )
    metric_export_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="push interval for OTLP metrics (OTEL_METRIC_EXPORT_INTERVAL)",
    )
    prometheus: bool = Field(
        default=False,
        description="serve /metrics in the Prometheus text format on the proxy's port "
        "(also on with OTEL_METRICS_EXPORTER=prometheus)",
    )
    capture_content: bool = Field(
        default=False,
        description="put prompts and answers on spans, PII masked as the audit trail's "
        "redacted content (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)",
    )

    @property
    def tracing(self) -> bool:
        return self.traces != "none"
