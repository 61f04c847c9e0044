"""The request pipeline, top to bottom:

parse and validate -> resolve the model and check the app may use it -> write the
"admitted" audit record and wait until it is durable -> call upstreams (retries,
fallback) -> account usage and cost -> write the "completed" record and wait until it
is durable -> answer. Streams follow the same path; their completed record is written
when the stream ends, however it ends, and before the final ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from pydantic import BaseModel, ValidationError

from governance.audit import AuditEntry, AuditWriter, Completion, RecordKind
from governance.config.schema import Settings
from governance.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    TollhouseError,
)
from governance.keys import Principal
from governance.spend import PriceTable, estimate_tokens
from proxy.calls import Call, Endpoint, ProxiedRequest
from proxy.routing import Router
from proxy.stream_relay import StreamRelay, open_stream
from proxy.usage import Usage, answer_text, finish_reasons, reported_usage


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
        prices: PriceTable,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._settings = settings
        self._models = {m.name: m for m in settings.models}
        self._writer = writer
        self._router = router
        self._prices = prices
        self._clock = clock
        self._write_timeout_s = settings.audit.write_timeout_s

    def new_call(self, principal: Principal, endpoint: Endpoint) -> Call:
        return Call(
            request_id=f"req_{uuid.uuid4().hex}",
            principal=principal,
            app=self._settings.app(principal.app),
            endpoint=endpoint,
            started_at=self._clock(),
        )

    async def write(self, *entries: AuditEntry) -> None:
        await self._writer.write(entries, self._write_timeout_s)

    def write_nowait(self, *entries: AuditEntry) -> None:
        self._writer.write_nowait(entries)

    # -- admission -----------------------------------------------------------------
    async def admit(self, call: Call, spec: EndpointSpec, raw: bytes) -> None:
        """Validate the request; on success its admitted record is durable on return."""
        try:
            self._parse(call, spec, raw)
        except TollhouseError as error:
            await self.write(call.admitted(), call.failed(error))
            raise
        await self.write(call.admitted())

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
        if call.app.models is not None and model.name not in call.app.models:
            raise PermissionDeniedError(
                f"App '{call.principal.app}' may not use model '{model.name}'.", param="model"
            )
        if call.stream and not spec.streamable:
            raise InvalidRequestError("This endpoint does not stream.", param="stream")
        call.model = model

    # -- non-streamed answers ------------------------------------------------------
    async def unary(self, call: Call, spec: EndpointSpec) -> bytes:
        """Forward a non-streamed request; return the upstream's answer once audited."""
        assert call.model is not None and call.body is not None and call.request is not None
        body = call.body
        try:
            reply, call.target = await self._router.run(
                self._router.plan(call.model),
                lambda t: t.adapter.call(spec.upstream_path, {**body, "model": t.deployment.model}),
                call.attempts,
            )
        except TollhouseError as error:
            await self.write(call.failed(error))
            raise
        except asyncio.CancelledError:
            self.write_nowait(call.disconnected())
            raise
        payload = reply.payload
        choices = payload.get("choices")
        choices = choices if isinstance(choices, list) else []
        usage = reported_usage(payload) or Usage(
            estimate_tokens(call.request.prompt_text()),
            estimate_tokens(answer_text(choices)),
            estimated=True,
        )
        content = {k: v for k, v in payload.items() if k != "usage"} if call.keeps_content else None
        entry = self.completed_ok(
            call,
            usage,
            response_id=payload.get("id") if isinstance(payload.get("id"), str) else None,
            response_model=payload.get("model") if isinstance(payload.get("model"), str) else None,
            system_fingerprint=_str(payload.get("system_fingerprint")),
            finish_reasons=finish_reasons(choices) or None,
            response_content=content,
        )
        await self.write(entry)
        return reply.raw

    def completed_ok(self, call: Call, usage: Usage, **fields: Any) -> AuditEntry:
        """The completed record of a successful request, with its exact cost."""
        assert call.model is not None
        now = self._clock()
        cost = self._prices.cost(
            call.model.name, call.started_at, usage.input_tokens, usage.output_tokens
        )
        return call.entry(
            RecordKind.COMPLETED,
            Completion.OK,
            recorded_at=now,
            http_status=200,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            usage_estimated=usage.estimated,
            cost=cost.amount if cost else None,
            currency=cost.currency if cost else None,
            latency_ms=call.elapsed_ms(),
            **fields,
        )

    # -- streamed answers ----------------------------------------------------------
    async def stream(self, call: Call, spec: EndpointSpec) -> StreamRelay:
        """Open the upstream stream (retrying before its first byte) and return the relay."""
        try:
            return await open_stream(self, self._router, call, spec.upstream_path)
        except TollhouseError as error:
            await self.write(call.failed(error))
            raise
        except asyncio.CancelledError:
            self.write_nowait(call.disconnected())
            raise

    def estimate_input(self, call: Call) -> int:
        assert call.request is not None
        return estimate_tokens(call.request.prompt_text())


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
