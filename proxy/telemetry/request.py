"""One request's telemetry: its server span, a client span per upstream attempt, and the
metrics recorded when it completes.

The middleware opens the server span and creates a `RequestTrace`; the pipeline calls
`attempt` around every upstream call and `finish` with the request's completed audit
entry, which holds everything the span and the metrics need (decision, usage, cost,
outcome). Attributes come from configuration, counts and identifiers; prompt and
answer text only when content capture is on, and then only as the audit trail keeps
it redacted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from governance.audit import AuditEntry
from governance.errors import UpstreamError
from proxy.telemetry import semconv as sc
from proxy.telemetry.content import input_messages, output_messages
from proxy.telemetry.spans import CLIENT, ERROR, Span, SpanContext

if TYPE_CHECKING:
    from proxy.calls import Call
    from proxy.routing import Target
    from proxy.telemetry.setup import Telemetry

T = TypeVar("T")


class RequestTrace:
    """Created per HTTP request by the middleware; used by the pipeline."""

    __slots__ = (
        "_client",
        "_client_started",
        "_parent",
        "_telemetry",
        "named",
        "overhead_ms",
        "span",
        "started",
        "upstream_ended",
        "upstream_started",
    )

    def __init__(self, telemetry: Telemetry, span: Span | None, parent: SpanContext | None) -> None:
        self._telemetry = telemetry
        self.span = span  # None when tracing is off
        self._parent = parent  # the caller's trace context (passed on when tracing is off)
        self.started = time.perf_counter()
        self.upstream_started: float | None = None
        self.upstream_ended: float | None = None
        self.overhead_ms: float | None = None
        self._client: Span | None = None  # the attempt that answered, ended by `finish`
        self._client_started = 0.0
        self.named = False  # the span carries its GenAI name

    # -- overhead ------------------------------------------------------------------------
    def measure_overhead(self) -> float:
        """Milliseconds so far not spent waiting on upstreams (from the first attempt's
        start to the end of the last one, back-off included); fixed at the first call."""
        if self.overhead_ms is None:
            now = time.perf_counter()
            waited = 0.0
            if self.upstream_started is not None:
                waited = (self.upstream_ended or now) - self.upstream_started
            self.overhead_ms = max(0.0, (now - self.started - waited) * 1000)
        return self.overhead_ms

    # -- upstream attempts -----------------------------------------------------------------
    async def attempt(
        self,
        call: Call,
        target: Target,
        send: Callable[[Mapping[str, str]], Awaitable[T]],
    ) -> T:
        """Run one upstream attempt inside a client span; ``send`` gets the headers that
        carry the trace context (``traceparent``) to the upstream."""
        telemetry = self._telemetry
        metering = telemetry.metering
        upstream = target.adapter.name
        labels: dict[str, str | int] = {}
        headers: dict[str, str] = {}
        span: Span | None = None
        if self.span is not None or metering:
            labels = self._attempt_labels(call, target)
        if self.span is not None:
            span = telemetry.tracer.start_span(
                f"{labels[sc.OPERATION_NAME]} {labels[sc.REQUEST_MODEL]}",
                CLIENT,
                self.span.context,
                {**labels, sc.UPSTREAM: upstream, sc.ATTEMPT: len(call.attempts) + 1},
            )
            headers = span.context.headers()
        elif self._parent is not None:
            headers = self._parent.headers()  # pass the caller's along
        if metering and call.attempts:
            telemetry.instruments.upstream_retries.add(1, {sc.UPSTREAM: upstream})
        started = time.perf_counter()
        if self.upstream_started is None:
            self.upstream_started = started
        try:
            result = await send(headers)
        except BaseException as exc:
            ended = self.upstream_ended = time.perf_counter()
            code = (exc.code or exc.type) if isinstance(exc, UpstreamError) else type(exc).__name__
            if metering:
                if not isinstance(exc, asyncio.CancelledError):
                    telemetry.instruments.upstream_errors.add(
                        1, {sc.UPSTREAM: upstream, sc.ERROR_TYPE: code}
                    )
                telemetry.instruments.operation_duration.record(
                    ended - started, {**labels, sc.ERROR_TYPE: code}
                )
            if span is not None:
                span.set_attribute(sc.ERROR_TYPE, code)
                message = exc.message if isinstance(exc, UpstreamError) else type(exc).__name__
                span.set_status(ERROR, message)
                span.end()
            raise
        self.upstream_ended = now = time.perf_counter()
        if metering and call.stream:  # a stream attempt returns once its first event arrived
            telemetry.instruments.time_to_first_chunk.record(now - started, labels)
        self._client = span
        self._client_started = started
        return result

    def _attempt_labels(self, call: Call, target: Target) -> dict[str, str | int]:
        labels: dict[str, str | int] = {
            sc.OPERATION_NAME: sc.OPERATIONS[call.endpoint],
            sc.REQUEST_MODEL: target.deployment.model,
        }
        identity = self._telemetry.upstreams.get(target.adapter.name)
        if identity is not None:
            labels[sc.PROVIDER_NAME] = identity.provider
            labels[sc.SERVER_ADDRESS] = identity.address
            labels[sc.SERVER_PORT] = identity.port
        return labels

    def upstream_done(self) -> None:
        """A stream's last event arrived (its client span ends when the request does)."""
        self.upstream_ended = time.perf_counter()

    # -- completion --------------------------------------------------------------------------
    def finish(self, call: Call, entry: AuditEntry) -> None:
        """Everything the request's completed audit entry says, onto the spans and metrics."""
        telemetry = self._telemetry
        if not (telemetry.tracing or telemetry.metering):
            return
        operation = sc.OPERATIONS[call.endpoint]
        alias = entry.requested_model if entry.requested_model in telemetry.aliases else None
        decision = call.decision
        action = decision.action if decision is not None else "none"
        error = entry.error_type
        destination = entry.destination
        if telemetry.metering:
            self._record(call, entry, operation, alias, action)
        self._end_client(entry)
        span = self.span
        if span is None or not span.recording:
            return
        budget_state, budget_used = self._budgets(call, entry)
        span.update_name(f"{operation} {alias}" if alias else operation)
        self.named = True
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: operation,
            sc.REQUEST_ID: entry.request_id,
            sc.APP: entry.app,
            sc.COMPLETION: entry.status,
            sc.DECISION: action,
            sc.BUDGET_STATE: budget_state,
            sc.ATTEMPTS: len(call.attempts),
        }
        if alias:
            attributes[sc.REQUEST_MODEL] = alias
        if entry.team:
            attributes[sc.TEAM] = entry.team
        if entry.policy_name is not None:
            attributes[sc.POLICY_NAME] = entry.policy_name
        if entry.policy_version is not None:
            attributes[sc.POLICY_VERSION] = entry.policy_version
        if budget_used is not None:
            attributes[sc.BUDGET_USED] = budget_used
        if decision is not None:
            attributes[sc.DECISION_RULES] = list(decision.rules)
            for entity, count in decision.pii_counts.items():
                attributes[sc.PII_PREFIX + entity.lower()] = count
        if destination is not None:
            attributes[sc.DESTINATION] = destination
        if entry.upstream is not None:
            attributes[sc.UPSTREAM] = entry.upstream
            identity = telemetry.upstreams.get(entry.upstream)
            if identity is not None:
                attributes[sc.PROVIDER_NAME] = identity.provider
        route = call.route
        if route is not None:
            if route.reason is not None:  # ordered: an attempt was made
                attributes[sc.ROUTE_REASON] = route.reason
                attributes[sc.ROUTE_CANDIDATES] = [t.adapter.name for t in route.targets]
            if route.excluded:
                attributes[sc.ROUTE_EXCLUDED] = [e["upstream"] for e in route.excluded]
        _request_parameters(attributes, call.body)
        _usage_attributes(attributes, entry)  # the answer's identity is on the client span
        if entry.cost is not None:
            attributes[sc.COST] = float(entry.cost)
            attributes[sc.CURRENCY] = entry.currency or ""
        if error is not None:
            attributes[sc.ERROR_TYPE] = error
            span.set_status(ERROR, entry.error_message or error)
        if telemetry.capture_content:
            self._content(attributes, call, entry)
        span.set_attributes(attributes)

    def _record(
        self, call: Call, entry: AuditEntry, operation: str, alias: str | None, action: str
    ) -> None:
        """The request's metrics: decision, redactions, budgets, tokens, duration, spend."""
        instruments = self._telemetry.instruments
        decision = call.decision
        decided: dict[str, str | int] = {sc.DECISION: action}
        if entry.policy_name is not None:
            decided[sc.POLICY_NAME] = entry.policy_name
        if decision is not None and decision.error is not None:
            decided[sc.ERROR_TYPE] = decision.error.code or decision.error.type
        instruments.decisions.add(1, decided)
        destination = entry.destination
        if decision is not None and destination is not None:
            actions = decision.pii_actions.get(destination, {})  # type: ignore[call-overload]
            for entity, count in decision.pii_counts.items():
                acted = actions.get(entity)
                if count and acted is not None and acted != "allow":
                    instruments.redactions.add(
                        count,
                        {sc.PII_ENTITY: entity, sc.PII_ACTION: acted, sc.DESTINATION: destination},
                    )
        for use in call.budget_uses:
            labels: dict[str, str | int] = {
                sc.BUDGET_NAME: use.budget.name,
                sc.BUDGET_SCOPE: use.budget.scope,
            }
            if use.budget.scope in ("app", "team", "key"):  # never an end user's id
                labels[sc.BUDGET_SUBJECT] = use.subject
            instruments.budget_used.set(use.fraction, labels)
        usage = self._usage_labels(operation, entry)
        if entry.input_tokens is not None:
            instruments.token_usage.record(entry.input_tokens, {**usage, sc.TOKEN_TYPE: "input"})
        if entry.output_tokens is not None and call.endpoint.value != "embeddings":
            instruments.token_usage.record(entry.output_tokens, {**usage, sc.TOKEN_TYPE: "output"})
        if self._client_started and entry.error_type is None and self.upstream_ended is not None:
            instruments.operation_duration.record(self.upstream_ended - self._client_started, usage)
        if entry.cost:
            spend: dict[str, str | int] = {sc.APP: entry.app, sc.CURRENCY: entry.currency or ""}
            if entry.team:
                spend[sc.TEAM] = entry.team
            if alias:
                spend[sc.MODEL_ALIAS] = alias
            if entry.upstream:
                spend[sc.UPSTREAM] = entry.upstream
            instruments.spend.add(float(entry.cost), spend)

    def _end_client(self, entry: AuditEntry) -> None:
        span = self._client
        if span is None or not span.recording:
            return
        self._client = None
        attributes: dict[str, Any] = {}
        _response_attributes(attributes, entry)
        if entry.system_fingerprint:
            attributes[sc.OPENAI_SYSTEM_FINGERPRINT] = entry.system_fingerprint
        if entry.error_type is not None and entry.status != "ok":
            # The answer broke off mid-stream (or the client left): the attempt failed late.
            attributes[sc.ERROR_TYPE] = entry.error_type
            span.set_status(ERROR, entry.error_message or entry.error_type)
        span.set_attributes(attributes)
        end = None
        if self.upstream_ended is not None:  # when the upstream finished, not now
            end = time.time_ns() - int((time.perf_counter() - self.upstream_ended) * 1e9)
        span.end(end)

    def _usage_labels(self, operation: str, entry: AuditEntry) -> dict[str, str | int]:
        labels: dict[str, str | int] = {sc.OPERATION_NAME: operation}
        if entry.deployment_model is not None:
            labels[sc.REQUEST_MODEL] = entry.deployment_model
        identity = self._telemetry.upstreams.get(entry.upstream or "")
        if identity is not None:
            labels[sc.PROVIDER_NAME] = identity.provider
            labels[sc.SERVER_ADDRESS] = identity.address
            labels[sc.SERVER_PORT] = identity.port
        if entry.response_model is not None:
            labels[sc.RESPONSE_MODEL] = entry.response_model[:128]
        return labels

    @staticmethod
    def _budgets(call: Call, entry: AuditEntry) -> tuple[str, float | None]:
        """The budget state (none, ok, warning, exhausted) and the largest use fraction."""
        if not call.budget_uses:
            return "none", None
        largest = max(use.fraction for use in call.budget_uses)
        if entry.error_type == "budget_exceeded" or largest >= 1.0:
            return "exhausted", largest
        if "x-tollhouse-budget-warning" in call.headers:
            return "warning", largest
        return "ok", largest

    def _content(self, attributes: dict[str, Any], call: Call, entry: AuditEntry) -> None:
        """Prompts and answers as the audit trail keeps them redacted; nothing otherwise."""
        if call.retention != "redacted":
            attributes[sc.CONTENT_OMITTED] = f"audit content is {call.retention}, not redacted"
            return
        request = call.stored_request()
        if request is None:
            attributes[sc.CONTENT_OMITTED] = "the request was not analysed for personal data"
            return
        messages = input_messages(call.endpoint, request)
        if messages:
            attributes[sc.INPUT_MESSAGES] = orjson.dumps(messages).decode()
        answer = output_messages(call.endpoint, entry.response_content)
        if answer:
            attributes[sc.OUTPUT_MESSAGES] = orjson.dumps(answer).decode()


def _request_parameters(attributes: dict[str, Any], body: dict[str, Any] | None) -> None:
    if body is None:
        return
    for key, name in (
        ("max_completion_tokens", sc.REQUEST_MAX_TOKENS),
        ("max_tokens", sc.REQUEST_MAX_TOKENS),
        ("temperature", sc.REQUEST_TEMPERATURE),
        ("top_p", sc.REQUEST_TOP_P),
        ("seed", sc.REQUEST_SEED),
    ):
        value = body.get(key)
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and name not in attributes
        ):
            attributes[name] = value


def _response_attributes(attributes: dict[str, Any], entry: AuditEntry) -> None:
    if entry.response_id is not None:
        attributes[sc.RESPONSE_ID] = entry.response_id
    if entry.response_model is not None:
        attributes[sc.RESPONSE_MODEL] = entry.response_model
    if entry.finish_reasons:
        attributes[sc.RESPONSE_FINISH_REASONS] = list(entry.finish_reasons)
    _usage_attributes(attributes, entry)


def _usage_attributes(attributes: dict[str, Any], entry: AuditEntry) -> None:
    if entry.input_tokens is not None:
        attributes[sc.USAGE_INPUT_TOKENS] = entry.input_tokens
    if entry.output_tokens is not None and entry.endpoint != "embeddings":
        attributes[sc.USAGE_OUTPUT_TOKENS] = entry.output_tokens


async def traced(
    call: Call, target: Target, send: Callable[[Mapping[str, str]], Awaitable[T]]
) -> T:
    """One upstream attempt, in a client span when the request is traced."""
    if call.trace is None:
        return await send({})
    return await call.trace.attempt(call, target, send)
