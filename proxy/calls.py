"""One request's state as it moves through the pipeline, and the audit entries it yields."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Call", "Endpoint", "ProxiedRequest", "completion_for"]

from governance.audit import AuditEntry, Completion, RecordKind
from governance.config.schema import ModelConfig
from governance.errors import (
    AuditUnavailableError,
    TollhouseError,
    UpstreamTimeoutError,
)
from governance.keys import Principal
from governance.pii.redact import Pseudonyms
from governance.policy.decision import Decision
from governance.policy.redaction import audit_texts, redacted_texts
from governance.policy.schema import Destination
from governance.spend.limits import BudgetUse
from proxy.answer_filter import AnswerFilter
from proxy.endpoint import Endpoint
from proxy.routing import Attempt, RoutePlan, Target
from proxy.telemetry.request import RequestTrace
from proxy.text_slots import with_texts


class ProxiedRequest(Protocol):
    """What the pipeline needs from any endpoint's request model."""

    model: str
    user: str | None

    def prompt_text(self) -> str: ...


@dataclass(slots=True)
class Call:
    request_id: str
    principal: Principal
    endpoint: Endpoint
    started_at: dt.datetime
    started: float = field(default_factory=time.perf_counter)
    request: ProxiedRequest | None = None
    body: dict[str, Any] | None = None
    model: ModelConfig | None = None
    stream: bool = False
    client_wants_usage: bool = False
    route: RoutePlan | None = None  # the deployments to try, in order, and why
    attempts: list[Attempt] = field(default_factory=list)
    target: Target | None = None  # the deployment that answered
    # The version in force when the request arrived; the decision's, once there is one.
    policy: tuple[str, int] | None = None
    decision: Decision | None = None
    shadow: dict[str, Any] | None = None
    pseudonyms: Pseudonyms = field(default_factory=Pseudonyms)
    answer: AnswerFilter | None = None
    retention_cap: str | None = None  # set when the policy's retention cannot be honoured
    limits: list[dict[str, Any]] | None = None  # the budgets admission checked, as it saw them
    budget_uses: tuple[BudgetUse, ...] = ()  # the same, as objects (telemetry reads them)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    trace: RequestTrace | None = None  # the request's spans (set by the middleware)
    _bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def retention(self) -> str:
        """What the audit trail keeps of the content: none, redacted or full."""
        if self.retention_cap is not None:
            return self.retention_cap
        return self.decision.audit_content if self.decision is not None else "none"

    @property
    def keeps_content(self) -> bool:
        return self.retention != "none"

    def body_for(self, destination: Destination) -> dict[str, Any]:
        """The request body as it may be sent to ``destination`` (redacted per policy)."""
        body = self._bodies.get(destination)
        if body is None:
            assert self.body is not None and self.decision is not None
            texts = redacted_texts(self.decision, destination, self.pseudonyms)
            body = self._bodies[destination] = with_texts(self.body, texts) if texts else self.body
        return body

    def stored_request(self) -> Any:
        if self.retention == "full":
            return self.body
        decision = self.decision
        redacted = self.retention == "redacted" and self.body is not None
        if redacted and decision is not None and decision.texts:
            assert self.body is not None
            return with_texts(self.body, audit_texts(decision))
        # Not analysed (refused before analysis): the body could hold personal data.
        return None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def entry(self, kind: RecordKind, status: str, **fields: Any) -> AuditEntry:
        target = self.target
        decision = self.decision.trace() if self.decision else None
        if decision is not None and self.limits:
            decision = {**decision, "limits": self.limits}
        if decision is not None and self.route is not None:
            decision = {**decision, "routing": self.route.trace(target)}
        return AuditEntry(
            request_id=self.request_id,
            kind=kind,
            recorded_at=fields.pop("recorded_at", None) or dt.datetime.now(dt.UTC),
            app=self.principal.traffic_app,
            team=self.principal.team,
            key_id=self.principal.key_id,
            endpoint=self.endpoint.value,
            status=status,
            content_retention=self.retention,
            policy_name=self.policy[0] if self.policy else None,
            policy_version=self.policy[1] if self.policy else None,
            decision=decision,
            end_user=self.request.user if self.request is not None else None,
            requested_model=self.request.model if self.request is not None else None,
            stream=self.stream,
            upstream=target.adapter.name if target else None,
            deployment_model=target.deployment.model if target else None,
            destination=target.adapter.destination if target else None,
            attempts=[a.as_dict() for a in self.attempts] or None,
            **fields,
        )

    def admitted(self) -> AuditEntry:
        return self.entry(
            RecordKind.ADMITTED,
            "admitted",
            recorded_at=self.started_at,
            request_content=self.stored_request(),
            shadow=self.shadow,
        )

    def failed(self, error: TollhouseError, **fields: Any) -> AuditEntry:
        """The completed record of a request that ended in ``error``."""
        return self.entry(
            RecordKind.COMPLETED,
            completion_for(error, upstream_called=bool(self.attempts)),
            http_status=error.status,
            error_type=error.code or error.type,
            error_message=error.message,
            latency_ms=self.elapsed_ms(),
            **fields,
        )

    def disconnected(self, **fields: Any) -> AuditEntry:
        return self.entry(
            RecordKind.COMPLETED,
            Completion.CLIENT_DISCONNECTED,
            error_type="client_disconnected",
            error_message="the client closed the connection before the answer was complete",
            latency_ms=self.elapsed_ms(),
            **fields,
        )


def completion_for(error: TollhouseError, *, upstream_called: bool) -> Completion:
    if isinstance(error, AuditUnavailableError):
        return Completion.AUDIT_UNAVAILABLE
    if isinstance(error, UpstreamTimeoutError):
        return Completion.TIMEOUT
    if not upstream_called:
        return Completion.REJECTED
    return Completion.UPSTREAM_ERROR
