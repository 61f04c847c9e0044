"""The metric instruments, created once per process from one meter.

Every label value recorded here comes from configuration or from a fixed vocabulary
(model aliases, upstream names, apps and teams of API keys, actions, entity types,
error codes), never from request content: a metric label can neither carry personal
data nor explode in cardinality because of what a client sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from proxy.telemetry import semconv as sc
from proxy.telemetry.metrics import Meter

Labels = Mapping[str, str | int]


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self.token_usage = meter.histogram(
            sc.METRIC_TOKEN_USAGE,
            "{token}",
            "Number of input and output tokens used.",
            sc.TOKEN_BUCKETS,
        )
        self.operation_duration = meter.histogram(
            sc.METRIC_OPERATION_DURATION, "s", "GenAI operation duration.", sc.DURATION_BUCKETS_S
        )
        self.time_to_first_chunk = meter.histogram(
            sc.METRIC_TIME_TO_FIRST_CHUNK,
            "s",
            "Time to receive the first chunk of a streamed answer from the upstream.",
            sc.DURATION_BUCKETS_S,
        )
        self.http_duration = meter.histogram(
            sc.METRIC_HTTP_DURATION, "s", "Duration of HTTP server requests.", sc.FAST_BUCKETS_S
        )
        self.decisions = meter.counter(
            sc.METRIC_DECISIONS,
            "{request}",
            "Policy decisions, by action (allow, route, block; none when a "
            "request was refused before a decision).",
        )
        self.redactions = meter.counter(
            sc.METRIC_REDACTIONS,
            "{entity}",
            "Personal data entities acted on, by entity type and action.",
        )
        self.audit_write = meter.histogram(
            sc.METRIC_AUDIT_WRITE,
            "s",
            "Time a request waited for its audit records to become durable.",
            sc.FAST_BUCKETS_S,
        )
        self.budget_used = meter.gauge(
            sc.METRIC_BUDGET_USED,
            "1",
            "Fraction of a budget used, as the last admission checked it.",
        )
        self.spend = meter.counter(
            sc.METRIC_SPEND, "{currency_unit}", "Cost of completed requests."
        )
        self.upstream_errors = meter.counter(
            sc.METRIC_UPSTREAM_ERRORS,
            "{attempt}",
            "Upstream attempts that failed, by upstream and error type.",
        )
        self.upstream_retries = meter.counter(
            sc.METRIC_UPSTREAM_RETRIES,
            "{attempt}",
            "Upstream attempts after the first one of a request (retries and "
            "fallbacks), by upstream.",
        )
        self._audit_depth: Callable[[], int] | None = None
        meter.observable_gauge(
            sc.METRIC_AUDIT_QUEUE,
            "{record}",
            "Audit records waiting to be committed.",
            lambda: None if self._audit_depth is None else self._audit_depth(),
        )

    def observe_audit_queue(self, depth: Callable[[], int]) -> None:
        """Report the audit writer's queue depth at each collection."""
        self._audit_depth = depth
