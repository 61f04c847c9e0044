"""The request pipeline, top to bottom:

parse and validate -> evaluate the active policy (content checks, PII analysis where the
policy needs it, routing, permitted destinations) -> write the "admitted" audit record
with the decision trace and wait until it is durable -> call upstreams allowed for the
request's data (retries, fallback), each with the body redacted for its destination ->
mask and restore the answer -> account usage and cost -> write the "completed" record
and wait until it is durable -> answer. Streams follow the same path; their completed
record is written when the stream ends, however it ends, and before the final
``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from pydantic import BaseModel, ValidationError

from governance.audit import AuditEntry, AuditWriter, Completion, RecordKind
from governance.config.schema import Settings
from governance.errors import (
    AuditUnavailableError,
    InvalidRequestError,
    ModelNotFoundError,
    PiiUnavailableError,
    PolicyViolationError,
    TollhouseError,
)
from governance.keys import Principal
from governance.pii import Finding
from governance.pii.redact import mask_all
from governance.policy.decision import Decision, RequestFacts
from governance.policy.engine import PolicyEngine
from governance.policy.redaction import acted_on
from proxy.answer_filter import AnswerFilter, masker_for
from proxy.calls import Call, Endpoint, ProxiedRequest, completion_for
from proxy.pii_gate import PiiGate
from proxy.policies import PolicyCache
from proxy.routing import Router
from proxy.spend import Accounting
from proxy.stream_relay import StreamRelay, open_stream
from proxy.telemetry import RequestTrace, Telemetry
from proxy.telemetry.request import traced
from proxy.text_slots import collect_texts, opaque_input, substitute_texts, text_slots
from proxy.usage import Usage, answer_text, finish_reasons, reported_usage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    endpoint: Endpoint
    upstream_path: str
    request_model: type[BaseModel]
    streamable: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        writer: AuditWriter,
        router: Router,
        accounting: Accounting,
        policies: PolicyCache,
        pii: PiiGate,
        clock: Callable[[], dt.datetime] = _now,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._settings = settings
        self._instruments = (telemetry or Telemetry.disabled()).instruments
        self._policies = policies
        self._pii = pii
        self._models = {m.name: m for m in settings.models}
        self._writer = writer
        self._router = router
        self._accounting = accounting
        self._clock = clock
        self._write_timeout_s = settings.audit.write_timeout_s

    def new_call(
        self, principal: Principal, endpoint: Endpoint, trace: RequestTrace | None = None
    ) -> Call:
        active = self._policies.current().active
        return Call(
            trace=trace,
            policy=(active.name, active.version) if active is not None else None,
            request_id=f"req_{uuid.uuid4().hex}",
            principal=principal,
            endpoint=endpoint,
            started_at=self._clock(),
        )

    async def write(self, call: Call, *entries: AuditEntry) -> None:
        """Write and wait until durable. A completed record ends the request's in-flight
        budget hold: committed, it is counted; failed, the request is over anyway."""
        started = time.perf_counter()
        try:
            await self._writer.write(entries, self._write_timeout_s)
        except TollhouseError as error:
            self._observe(call, entries, error)
            raise
        else:
            self._observe(call, entries, None)
        finally:
            self._instruments.audit_write.record(time.perf_counter() - started)
            self._release(entries)

    def write_nowait(self, call: Call, *entries: AuditEntry) -> None:
        try:
            self._writer.write_nowait(entries)
        finally:
            self._release(entries)
            self._observe(call, entries, None)

    def _observe(
        self, call: Call, entries: tuple[AuditEntry, ...], error: TollhouseError | None
    ) -> None:
        """Hand the completed entry to the request's telemetry and the debug log."""
        for entry in entries:
            if entry.kind is not RecordKind.COMPLETED:
                continue
            if error is not None:  # the record never made it: say what the client saw
                entry = dataclasses.replace(
                    entry,
                    status=completion_for(error, upstream_called=bool(call.attempts)),
                    error_type=error.code or error.type,
                    error_message=error.message,
                )
            if call.trace is not None:
                call.trace.finish(call, entry)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s: %s%s",
                    entry.endpoint,
                    entry.requested_model,
                    entry.status,
                    f" ({entry.error_type}: {entry.error_message})" if entry.error_type else "",
                    extra={
                        "status": entry.status,
                        "http_status": entry.http_status,
                        "upstream": entry.upstream,
                        "latency_ms": entry.latency_ms,
                    },
                )

    def release(self, call: Call) -> None:
        """End the request's budget hold however it ended (idempotent); a safety net for
        paths that leave without a completed record."""
        self._accounting.release(call.request_id)

    def _release(self, entries: tuple[AuditEntry, ...]) -> None:
        for entry in entries:
            if entry.kind is RecordKind.COMPLETED:
                self._accounting.release(entry.request_id)

    # -- admission -----------------------------------------------------------------
    async def admit(self, call: Call, spec: EndpointSpec, raw: bytes) -> None:
        """Validate the request; on success its admitted record is durable on return."""
        try:
            self._parse(call, spec, raw)
            await self._decide(call, spec)
        except TollhouseError as error:
            await self.write(call, call.admitted(), call.failed(error))
            raise
        await self.write(call, call.admitted())

    def _parse(self, call: Call, spec: EndpointSpec, raw: bytes) -> None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidRequestError("The request body must be a JSON object.")
        try:
            request = spec.request_model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise InvalidRequestError(f"{param}: {first['msg']}", param=param) from exc
        call.request = proxied = cast(ProxiedRequest, request)
        call.body = body
        call.stream = bool(getattr(request, "stream", False))
        options = body.get("stream_options")
        call.client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        model = self._models.get(proxied.model)
        if model is None:
            raise ModelNotFoundError(
                f"The model '{proxied.model}' does not exist or you do not have access to it.",
                param="model",
            )
        if call.stream and not spec.streamable:
            raise InvalidRequestError("This endpoint does not stream.", param="stream")

    # -- policy --------------------------------------------------------------------
    async def _decide(self, call: Call, spec: EndpointSpec) -> None:
        """Evaluate the active (and shadow) policy; raise the decision's error if it blocks."""
        assert call.body is not None and call.request is not None
        engine = self._policies.active()
        body = call.body
        facts = RequestFacts(
            app=call.principal.traffic_app,
            team=call.principal.team,
            model=call.request.model,
            max_tokens=_max_tokens(body),
            texts=text_slots(spec.endpoint, body),
            accepts_max_tokens=spec.endpoint is not Endpoint.EMBEDDINGS,
        )
        opaque = opaque_input(spec.endpoint, body)
        decision = call.decision = await self._evaluate(engine, facts, opaque)
        call.policy = (decision.policy_name, decision.policy_version)
        shadow = self._policies.current().shadow
        if shadow is not None:
            call.shadow = await self._shadow(shadow, engine, decision, facts, opaque)
        if decision.error is not None:
            raise decision.error
        if decision.audit_content == "full" and not self._writer.encrypts:
            call.retention_cap = "none"  # never store full content unencrypted
            raise AuditUnavailableError(
                "The policy keeps full content in the audit trail, which is encrypted at rest, "
                "but no audit.master_key_file is configured; request refused.",
                code="content_encryption_unavailable",
            )
        call.model = self._models[decision.model]
        if decision.max_tokens is not None:
            call.body = {**body, "max_tokens": decision.max_tokens}
        response = decision.response
        masker = None
        if response.mask_entities:
            masker = masker_for(
                self._pii.analyze, frozenset(response.mask_entities), response.threshold
            )
        call.answer = AnswerFilter(call.pseudonyms, masker)
        call.route = self._router.plan(call.model, decision.destinations)
        await self._accounting.admit(call)

    async def _evaluate(
        self,
        engine: PolicyEngine,
        facts: RequestFacts,
        opaque: bool,
        findings: list[list[Finding]] | None = None,
    ) -> Decision:
        checked = engine.check(facts)
        if engine.needs_analysis(checked) and findings is None:
            if opaque:
                checked.error = PolicyViolationError(
                    "This request carries token ids, which cannot be checked for personal "
                    f"data; policy '{engine.name}' requires that check.",
                    code="uninspectable_input",
                )
            else:
                try:
                    findings = await self._pii.analyze(
                        [t.text for t in facts.texts], engine.recognizers
                    )
                except PiiUnavailableError as error:
                    checked.error = error
        return engine.decide(checked, findings)

    async def _shadow(
        self,
        shadow: PolicyEngine,
        active: PolicyEngine,
        decision: Decision,
        facts: RequestFacts,
        opaque: bool,
    ) -> dict[str, Any]:
        """The candidate's would-be decision; it never affects the request."""
        same_analysis = shadow.policy.recognizers == active.policy.recognizers
        findings = (
            [list(f) for f in decision.findings] if same_analysis and decision.texts else None
        )
        try:
            return (await self._evaluate(shadow, facts, opaque, findings)).shadow_trace()
        except Exception as exc:
            return {"version": shadow.version, "error": type(exc).__name__}

    async def redact_for_audit(self, call: Call, content: Any) -> Any:
        """The answer as the audit trail keeps it: as is (full) or with PII masked."""
        if call.retention != "redacted" or content is None:
            return content if call.retention == "full" else None
        strings: list[str] = []
        collect_texts(content, strings)
        try:
            findings = await self._pii.analyze(strings)
        except PiiUnavailableError:
            return {"redaction_failed": True}
        assert call.decision is not None
        pii = call.decision.rules_in_force.pii
        masked = iter(
            mask_all(text, [f for f in found if acted_on(pii, f)])
            for text, found in zip(strings, findings, strict=True)
        )
        return substitute_texts(content, masked)

    # -- non-streamed answers ------------------------------------------------------
    async def unary(self, call: Call, spec: EndpointSpec) -> bytes:
        """Forward a non-streamed request; return the upstream's answer once audited."""
        assert call.model is not None and call.body is not None and call.request is not None
        try:
            assert call.route is not None
            routed = await self._router.run(
                call.route,
                lambda t: traced(
                    call,
                    t,
                    lambda headers: t.adapter.call(
                        spec.upstream_path,
                        {**call.body_for(t.adapter.destination), "model": t.deployment.model},
                        headers,
                    ),
                ),
                call.attempts,
            )
            routed.lease.release()  # the whole answer is read
            call.target, reply = routed.target, routed.result
            payload = reply.payload
            raw = reply.raw
            answer = call.answer
            if answer is not None and answer.active and spec.endpoint is not Endpoint.EMBEDDINGS:
                await answer.payload(payload)
                raw = orjson.dumps(payload)
        except TollhouseError as error:
            await self.write(call, call.failed(error))
            raise
        except asyncio.CancelledError:
            self.write_nowait(call, call.disconnected())
            raise
        choices = payload.get("choices")
        choices = choices if isinstance(choices, list) else []
        usage = reported_usage(payload) or Usage(
            self.estimate_input(call),
            self.count(call, answer_text(choices)),
            estimated=True,
        )
        content = None
        if call.keeps_content:
            content = await self.redact_for_audit(
                call, {k: v for k, v in payload.items() if k != "usage"}
            )
        entry = self.completed_ok(
            call,
            usage,
            response_id=payload.get("id") if isinstance(payload.get("id"), str) else None,
            response_model=payload.get("model") if isinstance(payload.get("model"), str) else None,
            system_fingerprint=_str(payload.get("system_fingerprint")),
            finish_reasons=finish_reasons(choices) or None,
            response_content=content,
        )
        await self.write(call, entry)
        return raw

    def completed_ok(self, call: Call, usage: Usage, **fields: Any) -> AuditEntry:
        """The completed record of a successful request, with its exact cost."""
        return call.entry(
            RecordKind.COMPLETED,
            Completion.OK,
            recorded_at=self._clock(),
            http_status=200,
            latency_ms=call.elapsed_ms(),
            **self.charges(call, usage),
            **fields,
        )

    def charges(self, call: Call, usage: Usage) -> dict[str, Any]:
        """Usage and exact cost fields for a completed record (`Accounting.charges`)."""
        return self._accounting.charges(call, usage)

    def count(self, call: Call, text: str) -> int:
        return self._accounting.count(call, text)

    # -- streamed answers ----------------------------------------------------------
    async def stream(self, call: Call, spec: EndpointSpec) -> StreamRelay:
        """Open the upstream stream (retrying before its first byte) and return the relay."""
        try:
            return await open_stream(self, self._router, call, spec.upstream_path)
        except TollhouseError as error:
            await self.write(call, call.failed(error))
            raise
        except asyncio.CancelledError:
            self.write_nowait(call, call.disconnected())
            raise

    def estimate_input(self, call: Call) -> int:
        return self._accounting.estimate_input(call)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
