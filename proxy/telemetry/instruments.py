"""The metric instruments, created once per process from one meter.

Every label value recorded here comes from configuration or from a fixed vocabulary
(model aliases, upstream names, apps and teams of API keys, actions, entity types,
error codes), never from request content: a metric label can neither carry personal
data nor explode in cardinality because of what a client sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from proxy.telemetry import semconv as sc

Labels = Mapping[str, str | int]


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
        )
        self.operation_duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration."
        )
        self.time_to_first_chunk = meter.create_histogram(
            sc.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed answer from the upstream.",
        )
        self.http_duration = meter.create_histogram(
            sc.METRIC_HTTP_DURATION, unit="s", description="Duration of HTTP server requests."
        )
        self.decisions = meter.create_counter(
            sc.METRIC_DECISIONS,
            unit="{request}",
            description="Policy decisions, by action (allow, route, block; none when a "
            "request was refused before a decision).",
        )
        self.redactions = meter.create_counter(
            sc.METRIC_REDACTIONS,
            unit="{entity}",
            description="Personal data entities acted on, by entity type and action.",
        )
        self.audit_write = meter.create_histogram(
            sc.METRIC_AUDIT_WRITE,
            unit="s",
            description="Time a request waited for its audit records to become durable.",
        )
        self.budget_used = meter.create_gauge(
            sc.METRIC_BUDGET_USED,
            unit="1",
            description="Fraction of a budget used, as the last admission checked it.",
        )
        self.spend = meter.create_counter(
            sc.METRIC_SPEND, unit="{currency_unit}", description="Cost of completed requests."
        )
        self.upstream_errors = meter.create_counter(
            sc.METRIC_UPSTREAM_ERRORS,
            unit="{attempt}",
            description="Upstream attempts that failed, by upstream and error type.",
        )
        self.upstream_retries = meter.create_counter(
            sc.METRIC_UPSTREAM_RETRIES,
            unit="{attempt}",
            description="Upstream attempts after the first one of a request (retries and "
            "fallbacks), by upstream.",
        )
        self._meter = meter

    def observe_audit_queue(self, depth: Callable[[], int]) -> None:
        """Report the audit writer's queue depth at each collection."""

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(depth())]

        self._meter.create_observable_gauge(
            sc.METRIC_AUDIT_QUEUE,
            callbacks=[observe],
            unit="{record}",
            description="Audit records waiting to be committed.",
        )
