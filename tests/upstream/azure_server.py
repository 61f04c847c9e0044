"""A loopback Azure OpenAI resource: deployment URLs, ``api-version``, ``api-key``.

It answers with the demo model's deterministic answers (`FakeModelServer`), dressed the way
Azure dresses them: ``prompt_filter_results`` and per-choice ``content_filter_results``,
a first stream chunk that carries only the prompt filter results (empty ``id``, ``model``
and ``object``), the underlying model's name in ``model``, and ``x-ms-region`` /
``apim-request-id`` headers. Requests are checked in Azure's order (key, then API
version, then deployment) and answered with Azure's error bodies. Failures are queued from
the test thread (`AzureOpenAIServer.inject`); every request is logged in ``received``.
All data is synthetic.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from tollhouse.demo.model_server import FakeModelServer, ServerThread

API_VERSION = "2024-10-21"
API_KEY = "azure-test-key-not-a-secret"
REGION = "swedencentral"

AzureFaultKind = Literal[
    "status",  # answer `status` with Azure's error body for it
    "content_filter",  # 400 code content_filter: the prompt was refused by the filter
    "filtered_answer",  # 200, but the answer was cut by the filter (finish content_filter)
]

_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def tollhouse_upstream(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """A Tollhouse ``upstreams[]`` entry for this resource (key in AZURE_OPENAI_KEY)."""
    return {
        "name": name,
        "kind": "azure_openai",
        "base_url": url,
        "api_version": API_VERSION,
        "api_key_env": "AZURE_OPENAI_KEY",
        "destination": "external",
        "timeout_s": 1.0,
        "connect_timeout_s": 1.0,
        "fingerprint_headers": ["x-ms-region"],
        **extra,
    }


@dataclass
class AzureFault:
    kind: AzureFaultKind
    status: int = 429
    retry_after: str | None = None  # the Retry-After header (whole seconds)
    retry_after_ms: str | None = None  # Azure's retry-after-ms header
    code: str | None = None  # the error code; default: what Azure sends for `status`
    message: str | None = None
    times: int = 1


@dataclass
class Received:
    deployment: str
    operation: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class AzureOpenAIServer(FakeModelServer):
    """``deployments`` maps each deployment name to the model it serves."""

    def __init__(
        self,
        deployments: dict[str, str],
        *,
        api_key: str = API_KEY,
        api_versions: tuple[str, ...] = (API_VERSION,),
        **kwargs: Any,
    ) -> None:
        super().__init__(models=sorted(set(deployments.values())), **kwargs)
        self.deployments = dict(deployments)
        self.api_key = api_key
        self.api_versions = api_versions
        self.received: list[Received] = []
        self._faults: deque[AzureFault] = deque()
        self._lock = threading.Lock()
        self._served = 0
        self.server: ServerThread | None = None

    # -- lifecycle and test controls ---------------------------------------------------
    def start(self) -> AzureOpenAIServer:
        self.server = ServerThread(self.application()).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        """The resource endpoint (what ``base_url`` names): no ``/openai`` suffix."""
        assert self.server is not None
        return f"http://{self.server.host}:{self.server.port}"

    def inject(self, fault: AzureFault) -> None:
        with self._lock:
            self._faults.append(dataclasses.replace(fault))

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.received.clear()

    def _take(self) -> AzureFault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times == 0:
                self._faults.popleft()
            return fault

    # -- aiohttp wiring --------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        operations = "chat/completions|completions|embeddings"
        route = f"/openai/deployments/{{deployment}}/{{operation:{operations}}}"
        app.router.add_post(route, self._azure_entry)
        return app

    async def _azure_entry(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        deployment = request.match_info["deployment"]
        operation = request.match_info["operation"]
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = {}
        self.received.append(
            Received(
                deployment=deployment,
                operation=operation,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body if isinstance(body, dict) else {},
            )
        )
        if request.headers.get("api-key") != self.api_key:
            return _azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource.",
            )
        version = request.query.get("api-version")
        if version is None:
            return _azure_error(404, "404", "Resource not found")
        if version not in self.api_versions:
            return _azure_error(400, "BadRequest", "API version not supported")
        model = self.deployments.get(deployment)
        if model is None:
            return _azure_error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
            )
        fault = self._take()
        if fault is not None and fault.kind != "filtered_answer":
            return _fault_response(fault)
        body = {**body, "model": model}  # Azure answers with the deployed model's name
        return await self._azure_answer(request, operation, body, filtered=fault is not None)

    # -- answers ---------------------------------------------------------------------
    async def _azure_answer(
        self, request: web.Request, operation: str, body: dict[str, Any], filtered: bool
    ) -> web.StreamResponse:
        self._served += 1
        headers = {
            "x-ms-region": REGION,
            "apim-request-id": f"00000000-0000-4000-8000-{self._served:012d}",
            "x-request-id": f"azure-req-{self._served}",
        }
        if operation == "embeddings":
            return _json(self.embeddings(body), headers)
        chat = operation == "chat/completions"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = [orjson.loads(e) for e in self.stream_events(body, chat, include_usage)]
            return await self._azure_stream(request, events, filtered, headers)
        payload = self.chat(body) if chat else self.completion(body)
        payload["prompt_filter_results"] = _prompt_filter_results()
        for choice in payload["choices"]:
            choice["content_filter_results"] = _filter_results(filtered=filtered)
            if filtered:
                choice["finish_reason"] = "content_filter"
        return _json(payload, headers)

    async def _azure_stream(
        self,
        request: web.Request,
        events: list[dict[str, Any]],
        filtered: bool,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **headers})
        await response.prepare(request)
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": _prompt_filter_results(),
        }
        await response.write(b"data: " + orjson.dumps(first) + b"\n\n")
        for event in events:
            for choice in event.get("choices") or []:
                ended = choice.get("finish_reason") is not None
                if filtered and ended:
                    choice["finish_reason"] = "content_filter"
                choice["content_filter_results"] = (
                    _filter_results(filtered=filtered) if ended or choice.get("delta") else {}
                )
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


# -- Azure's bodies ---------------------------------------------------------------------
def _filter_results(filtered: bool = False) -> dict[str, Any]:
    verdicts: dict[str, Any] = {
        name: {"filtered": False, "severity": "safe"} for name in _CATEGORIES
    }
    if filtered:
        verdicts["violence"] = {"filtered": True, "severity": "medium"}
    return verdicts


def _prompt_filter_results() -> list[dict[str, Any]]:
    return [{"prompt_index": 0, "content_filter_results": _filter_results()}]


def _fault_response(fault: AzureFault) -> web.Response:
    if fault.kind == "content_filter":
        return _content_filter_error(fault)
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = fault.retry_after_ms
    code = fault.code or _DEFAULT_CODES.get(fault.status, str(fault.status))
    message = fault.message or _DEFAULT_MESSAGES.get(fault.status, "The server had an error.")
    return _azure_error(fault.status, code, message, headers)


def _content_filter_error(fault: AzureFault) -> web.Response:
    error = {
        "message": fault.message
        or "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": _filter_results(filtered=True),
        },
    }
    return _json({"error": error}, {}, 400)


_DEFAULT_CODES = {400: "BadRequest", 429: "429", 500: "InternalServerError", 503: "503"}
_DEFAULT_MESSAGES = {
    400: "Invalid value for 'temperature': synthetic test failure.",
    429: "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
    f"{API_VERSION} have exceeded call rate limit of your current pricing tier.",
    503: "The service is temporarily unable to process your request.",
}


def _azure_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return _json(
        {"error": {"code": code, "message": message, "innererror": {"code": code}}},
        headers or {},
        status,
    )


def _json(payload: dict[str, Any], headers: dict[str, str], status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )
