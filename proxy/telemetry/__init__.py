"""OpenTelemetry traces and metrics with the GenAI semantic conventions (docs/observability.md)."""

from proxy.telemetry.middleware import TelemetryMiddleware
from proxy.telemetry.request import RequestTrace
from proxy.telemetry.setup import Telemetry, build_telemetry

__all__ = ["RequestTrace", "Telemetry", "TelemetryMiddleware", "build_telemetry"]
