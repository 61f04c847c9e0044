"""One request's state as it moves through the pipeline, and the audit entries it yields."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from governance.audit import AuditEntry, Completion, RecordKind
from governance.config.schema import AppConfig, ModelConfig
from governance.errors import (
    AuditUnavailableError,
    TollhouseError,
    UpstreamTimeoutError,
)
from governance.keys import Principal
from proxy.routing import Attempt, Target


class Endpoint(StrEnum):
    CHAT = "chat.completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


class ProxiedRequest(Protocol):
    """What the pipeline needs from any endpoint's request model."""

    model: str
    user: str | None

    def prompt_text(self) -> str: ...


@dataclass(slots=True)
class Call:
    request_id: str
    principal: Principal
    app: AppConfig
    endpoint: Endpoint
    started_at: dt.datetime
    started: float = field(default_factory=time.perf_counter)
    request: ProxiedRequest | None = None
    body: dict[str, Any] | None = None
    model: ModelConfig | None = None
    stream: bool = False
    client_wants_usage: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    target: Target | None = None

    @property
    def keeps_content(self) -> bool:
        return self.app.audit_content == "full"

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def entry(self, kind: RecordKind, status: str, **fields: Any) -> AuditEntry:
        target = self.target
        return AuditEntry(
            request_id=self.request_id,
            kind=kind,
            recorded_at=fields.pop("recorded_at", None) or dt.datetime.now(dt.UTC),
            app=self.principal.app,
            team=self.principal.team,
            key_id=self.principal.key_id,
            endpoint=self.endpoint.value,
            status=status,
            content_retention=self.app.audit_content,
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
            request_content=self.body if self.keeps_content else None,
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
