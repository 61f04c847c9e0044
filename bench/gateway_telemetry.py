"""What tracing costs: the same governed Tollhouse in the shared gateway harness
(../shared/tools/gatewaybench), once with telemetry off and once with traces and
metrics exported over OTLP/HTTP to a collector stand-in on loopback.

Both targets run one worker pinned to the proxy CPU, with the policy active and the
audit trail on (SQLite, full content encrypted), PII analysis off. The OTLP sink runs
in this process, pinned to the load CPU, and answers every export at once, so what is
measured is the proxy's own work: spans and metrics recorded on the request path and
encoded and sent by the batch processors. Rounds alternate the order of the two
targets; the script prints the median over rounds of each target's throughput per
scenario and the ratio traced/plain.

    .venv/bin/python bench/gateway_telemetry.py [--rounds 3] [--duration 10] [--warmup 3]

Needs ``wrk`` (apt-get install wrk). Results of each round stay under
``.tollhouse/bench-telemetry/round-N/results/`` (the harness's results.json and results.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from governed_setup import ROOT, prepare
from harness import MODEL, UPSTREAM, by_level, run_harness, tollhouse_target

WORK = ROOT / ".tollhouse" / "bench-telemetry"


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector stand-in: read the export, answer 200 with an empty body."""

    exports = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).exports += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    quiet = {"logging": {"level": "WARNING"}}
    plain, key = prepare(WORK / "plain", UPSTREAM, MODEL, MODEL, extra=quiet)
    traced, traced_key = prepare(WORK / "traced", UPSTREAM, MODEL, MODEL, extra=quiet)
    os.sched_setaffinity(0, {0})  # the sink shares the load CPU with wrk and the stub
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{server.server_address[1]}"
    spec = [
        tollhouse_target("tollhouse-plain", plain, key, notes="telemetry off"),
        tollhouse_target(
            "tollhouse-traced",
            traced,
            traced_key,
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            },
            notes="traces and metrics over OTLP/HTTP",
        ),
    ]
    per_round: list[dict[str, dict[str, float]]] = []
    try:
        for number in range(1, args.rounds + 1):
            order = ["tollhouse-plain", "tollhouse-traced"]
            if number % 2 == 0:
                order.reverse()
            results_dir = run_harness(
                WORK / f"round-{number}",
                spec,
                [
                    "--targets",
                    ",".join(["direct", *order]),
                    "--direct-runs",
                    "1",
                    "--scenarios",
                    "chat,stream",
                    "--concurrency",
                    "1,16,64",
                    "--duration",
                    str(args.duration),
                    "--warmup",
                    str(args.warmup),
                ],
                setup=False,
            )
            results = json.loads((results_dir / "results.json").read_text())
            per_round.append(
                {
                    f"{name} {field}": by_level(results, name, field)
                    for name in ("tollhouse-plain", "tollhouse-traced")
                    for field in ("rps", "proxy_cpu_ms_per_req")
                }
            )
    finally:
        server.shutdown()
    print(f"\n{args.rounds} rounds, medians over rounds; OTLP exports received: {_Sink.exports}")
    print(
        f"  {'level':10s} {'rps plain':>10s} {'rps traced':>10s} {'ratio':>6s}"
        f" {'CPU ms/req plain':>17s} {'traced':>7s}"
    )
    for level in per_round[0]["tollhouse-plain rps"]:

        def median(key: str, level: str = level) -> float:
            return statistics.median(r[key][level] for r in per_round)

        plain_rps, traced_rps = median("tollhouse-plain rps"), median("tollhouse-traced rps")
        print(
            f"  {level:10s} {plain_rps:10.1f} {traced_rps:10.1f} {traced_rps / plain_rps:6.3f}"
            f" {median('tollhouse-plain proxy_cpu_ms_per_req'):17.3f}"
            f" {median('tollhouse-traced proxy_cpu_ms_per_req'):7.3f}"
        )


if __name__ == "__main__":
    main()
