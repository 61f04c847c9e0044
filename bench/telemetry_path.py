"""CPU per request of the telemetry path alone, in one process: a server span, one
upstream attempt in a client span, the completion's attributes and metrics, exported over
OTLP/HTTP to a sink on loopback (encoding and sending included; the sink runs in its own
process, so its CPU does not count). No HTTP serving, no pipeline: what `RequestTrace`
and the middleware's share add to a request.

    .venv/bin/python bench/telemetry_path.py [--requests 20000] [--rounds 3]

Prints the median over rounds for telemetry off, traces only, metrics only, and both.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import statistics
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from governance.audit import AuditEntry, RecordKind
from governance.config.loader import settings_from_mapping
from governance.config.schema import DeploymentConfig
from governance.keys import Principal
from governance.observability import Scrubber
from proxy.calls import Call
from proxy.endpoint import Endpoint
from proxy.routing import Target
from proxy.telemetry import Telemetry, build_telemetry
from proxy.telemetry.request import RequestTrace
from proxy.telemetry.spans import SERVER


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Adapter:
    name = "demo"
    destination = "internal"


def _telemetry(mode: str, sink: str) -> Telemetry:
    raw: dict[str, Any] = {
        "upstreams": [
            {"name": "demo", "base_url": "http://127.0.0.1:18000/v1", "destination": "internal"}
        ],
        "models": [{"name": "bench", "deployments": [{"upstream": "demo", "model": "m"}]}],
        "telemetry": {
            "traces": "otlp" if "traces" in mode else "none",
            "metrics": "otlp" if "metrics" in mode else "none",
            "otlp_endpoint": sink,
            "metric_export_interval_s": 5,
        },
    }
    return build_telemetry(settings_from_mapping(raw, {}), Scrubber())


async def _request(telemetry: Telemetry, target: Target, principal: Principal) -> None:
    span = None
    if telemetry.tracing:
        span = telemetry.tracer.start_span("POST", SERVER, None, {"http.request.method": "POST"})
    trace = RequestTrace(telemetry, span, None)
    call = Call(
        request_id="req_0123456789abcdef0123456789abcdef",
        principal=principal,
        endpoint=Endpoint.CHAT,
        started_at=dt.datetime.now(dt.UTC),
        trace=trace,
    )
    call.body = {"model": "bench", "max_tokens": 32, "temperature": 0}

    async def send(headers: Any) -> int:
        return 1

    await trace.attempt(call, target, send)
    call.target = target
    entry = AuditEntry(
        request_id=call.request_id,
        kind=RecordKind.COMPLETED,
        recorded_at=dt.datetime.now(dt.UTC),
        app="bench",
        team="team",
        key_id="key",
        endpoint="chat",
        status="ok",
        content_retention="none",
        requested_model="bench",
        upstream="demo",
        deployment_model="m",
        destination="internal",
        response_id="chatcmpl-1",
        response_model="m",
        finish_reasons=["stop"],
        input_tokens=80,
        output_tokens=32,
        policy_name="bench",
        policy_version=1,
        http_status=200,
    )
    trace.finish(call, entry)
    trace.measure_overhead()
    if telemetry.metering:
        telemetry.instruments.http_duration.record(0.001, {"http.response.status_code": 200})
    if span is not None:
        span.end()


def measure(mode: str, sink: str, requests: int) -> float:
    """Microseconds of process CPU per request."""
    telemetry = _telemetry(mode, sink)
    target = Target(_Adapter(), DeploymentConfig(upstream="demo", model="m"))  # type: ignore[arg-type]
    principal = Principal.operator("bench")

    async def run() -> float:
        telemetry.start()
        for _ in range(1000):  # warm-up
            await _request(telemetry, target, principal)
        await telemetry.aflush()
        started = time.process_time()
        for _ in range(requests):
            await _request(telemetry, target, principal)
            await asyncio.sleep(0)  # let the exporter's task run, as a server would
        await telemetry.aflush()
        spent = time.process_time() - started
        await telemetry.aclose()
        return spent

    return asyncio.run(run()) / requests * 1e6


def _serve(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _Sink).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = 18990
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    time.sleep(0.5)
    sink = f"http://127.0.0.1:{port}"
    print(f"CPU per request, median of {args.rounds} rounds of {args.requests}:")
    for mode in ("off", "traces", "metrics", "traces+metrics"):
        figures = [measure(mode, sink, args.requests) for _ in range(args.rounds)]
        print(f"  {mode:15s} {statistics.median(figures):7.1f} us")
    server.terminate()


if __name__ == "__main__":
    main()
