"""``GET /metrics``: the process's metrics in the Prometheus text format.

Served only when ``telemetry.prometheus`` is on. Names follow OpenTelemetry's
Prometheus compatibility rules: dots become underscores, the unit is appended
(``_seconds``, ``_ratio``; annotations such as ``{token}`` are not units), and counters
end in ``_total``. Each worker process has its own metrics; with several workers a
scrape reads one of them (push OTLP instead, or run one worker per port).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from proxy.state import AppState
from proxy.telemetry.metrics import MetricData

_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def metric_name(data: MetricData) -> str:
    """The Prometheus name of a metric (without ``_total``, which the client adds)."""
    name = _INVALID.sub("_", data.name)
    unit = _UNITS.get(data.unit)
    if unit is not None and not name.endswith(f"_{unit}"):
        name = f"{name}_{unit}"
    return name


class _Snapshot(Collector):
    """Metric families from one `Meter.collect` snapshot."""

    def __init__(self, data: Sequence[MetricData]) -> None:
        self._data = data

    def collect(self) -> Iterator[Metric]:
        for data in self._data:
            name = metric_name(data)
            keys = sorted({k for point in data.points for k, _ in point.labels})
            labels = [_INVALID.sub("_", k) for k in keys]
            family: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
            if data.kind == "histogram":
                family = HistogramMetricFamily(name, data.description, labels=labels)
            elif data.kind == "sum":
                family = CounterMetricFamily(name, data.description, labels=labels)
            else:
                family = GaugeMetricFamily(name, data.description, labels=labels)
            for point in data.points:
                values = dict(point.labels)
                label_values = [str(values.get(k, "")) for k in keys]
                if isinstance(family, HistogramMetricFamily):
                    buckets, running = [], 0
                    edges = (*data.bounds, float("inf"))
                    for bound, count in zip(edges, point.counts, strict=True):
                        running += count
                        buckets.append((_bound(bound), running))
                    family.add_metric(label_values, buckets, float(point.value))
                else:
                    family.add_metric(label_values, float(point.value))
            yield family


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def render(data: Sequence[MetricData]) -> bytes:
    return generate_latest(_Snapshot(data))


async def metrics(request: Request) -> Response:
    state = request.app.state.tollhouse
    assert isinstance(state, AppState)
    telemetry = state.telemetry
    if not telemetry.prometheus:
        return Response(status_code=404)
    # Collected on the event loop, where the instruments are updated.
    return Response(render(telemetry.meter.collect()), media_type=CONTENT_TYPE_LATEST)
