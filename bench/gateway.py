"""Tollhouse next to LiteLLM and Portkey in the shared gateway harness, one run.

Runs ../shared/tools/gatewaybench (installing wrk, LiteLLM and Portkey under /tmp/gwb
first unless ``--no-setup``) with the targets ``direct``, the peers, and a governed
Tollhouse: one worker pinned to the proxy CPU, the bench policy active (content rules
on every request, full content kept encrypted), the audit trail on SQLite with
``synchronous=FULL``, PII analysis off, telemetry off. Everything comes from one run of
the harness on this machine, so the rows compare like with like. Writes the table and
the issue-10 target lines to ``bench/GATEWAY_RESULTS.md`` (``--out``) and prints them;
the harness's own results.json/results.md stay under ``.tollhouse/bench-gateway/``.

    .venv/bin/python bench/gateway.py [--duration 15] [--warmup 5] [--no-setup]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path
from typing import Any

from governed_setup import ROOT, prepare
from harness import MODEL, UPSTREAM, run_harness, tollhouse_target

WORK = ROOT / ".tollhouse" / "bench-gateway"
TOLLHOUSE = "tollhouse"


def _run(results: dict[str, Any], target: str, scenario: str, conc: int) -> dict[str, Any]:
    for run in results["runs"]:
        if (
            run.get("target") == target
            and run["scenario"] == scenario
            and run["concurrency"] == conc
        ):
            return dict(run)
    return {}


def _fmt(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(results: dict[str, Any], names: list[str]) -> list[str]:
    lines = [
        "| target | chat rps 1 / 16 / 64 | added p50 at 1 (ms) | CPU ms/req 1 / 16 / 64 "
        "| stream 16: rps / p99 ms | 50 ms upstream, 64: rps / p99 ms | peak RSS MB | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        chat = [_run(results, name, "chat", c) for c in (1, 16, 64)]
        stream = _run(results, name, "stream", 16)
        delay = _run(results, name, "delay50", 64)
        errors = sum(r.get("errors_total", 0) for r in results["runs"] if r["target"] == name)
        peak = results["targets"].get(name, {}).get("peak_rss_mb")
        lines.append(
            f"| {name} | {' / '.join(_fmt(r.get('rps')) for r in chat)} "
            f"| {_fmt(chat[0].get('added_p50_ms'), 2) if name != 'direct' else '-'} "
            f"| {' / '.join(_fmt(r.get('proxy_cpu_ms_per_req'), 2) for r in chat)} "
            f"| {_fmt(stream.get('rps'))} / {_fmt(stream.get('p99_ms'), 1)} "
            f"| {_fmt(delay.get('rps'))} / {_fmt(delay.get('p99_ms'), 1)} "
            f"| {_fmt(peak)} | {errors} |"
        )
    return lines


def verdicts(results: dict[str, Any]) -> list[str]:
    """Issue 10's targets that this run can judge, each met or MISSED."""
    th = {c: _run(results, TOLLHOUSE, "chat", c) for c in (1, 16, 64)}
    pk = {c: _run(results, "portkey", "chat", c) for c in (1, 16, 64)}
    ll = _run(results, "litellm", "chat", 64)
    lines = []

    def line(what: str, ok: bool | None) -> None:
        lines.append(f"{what}: {'not measured' if ok is None else 'met' if ok else 'MISSED'}")

    saturated = [th[c].get("proxy_cpu_ms_per_req") for c in (16, 64)]
    cpu = statistics.median(v for v in saturated if v is not None) if any(saturated) else None
    line(f"CPU per request at 16/64 clients {_fmt(cpu, 2)} ms (target <= 1.0)", cpu and cpu <= 1)
    rps, peer = th[64].get("rps"), pk[64].get("rps")
    if rps and peer:
        line(f"rps at 64 clients {rps:,.0f} vs Portkey {peer:,.0f} (target >=)", rps >= peer)
    if rps and ll.get("rps"):
        line(
            f"rps at 64 clients {rps / ll['rps']:.1f}x LiteLLM's (target >= 10x)",
            rps >= 10 * ll["rps"],
        )
    added = th[1].get("added_p50_ms")
    line(
        f"added p50 at 1 client {_fmt(added, 2)} ms (target <= 1.0)",
        added is not None and added <= 1,
    )
    delay = _run(results, TOLLHOUSE, "delay50", 64).get("p99_ms")
    line(
        f"50 ms upstream, 64 clients: p99 {_fmt(delay, 1)} ms (target <= 70)", delay and delay <= 70
    )
    srps = _run(results, TOLLHOUSE, "stream", 16).get("rps")
    prps = _run(results, "portkey", "stream", 16).get("rps")
    if srps and prps:
        line(
            f"stream rps at 16 clients {srps / prps:.2f}x Portkey's (target >= 1.5x)",
            srps >= 1.5 * prps,
        )
    peak = results["targets"].get(TOLLHOUSE, {}).get("peak_rss_mb")
    line(f"peak RSS {_fmt(peak)} MB (target <= 200)", peak is not None and peak <= 200)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--peers", default="litellm,portkey")
    parser.add_argument("--no-setup", action="store_true", help="do not install the peers")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "GATEWAY_RESULTS.md")
    args = parser.parse_args()
    config, key = prepare(
        WORK / "tollhouse", UPSTREAM, MODEL, MODEL, extra={"logging": {"level": "WARNING"}}
    )
    peers = [p for p in args.peers.split(",") if p]
    names = ["direct", *peers, TOLLHOUSE]
    target = tollhouse_target(
        TOLLHOUSE, config, key, notes="policy active, audit on (SQLite), PII off"
    )
    results_dir = run_harness(
        WORK,
        [target],
        [
            "--targets",
            ",".join(names),
            "--duration",
            str(args.duration),
            "--warmup",
            str(args.warmup),
        ],
        setup=not args.no_setup,
    )
    results = json.loads((results_dir / "results.json").read_text())
    rows = table(results, ["direct", *peers, TOLLHOUSE])
    checks = verdicts(results)
    cpus = sorted(
        {
            f"{cpu}: busy {v.get('busy_pct', 0):.0f} %, steal {v.get('steal_pct', 0):.1f} %"
            for run in results["runs"]
            if run.get("target") == TOLLHOUSE
            for cpu, v in (run.get("cpus") or {}).items()
            if isinstance(v, dict)
        }
    )
    text = "\n".join(
        [
            "# Gateway benchmark: Tollhouse next to LiteLLM and Portkey",
            "",
            f"One run of ../shared/tools/gatewaybench, {args.duration} s per level after "
            f"{args.warmup} s of warm-up; proxy on CPU 1, stub and wrk on CPU 0. Tollhouse: "
            "one worker, policy active, audit on (SQLite, synchronous=FULL, full content "
            "encrypted), PII analysis off, telemetry off.",
            "",
            *rows,
            "",
            "## Targets (issue 10)",
            "",
            *(f"- {c}" for c in checks),
            "",
            f"Machine: {platform.machine()}, Python {platform.python_version()}; "
            f"harness results: `{results_dir.relative_to(ROOT)}/`.",
            "",
            f"Reproduce: `.venv/bin/python bench/gateway.py --duration {args.duration} "
            f"--warmup {args.warmup}`",
            "",
        ]
    )
    args.out.write_text(text, encoding="utf-8")
    print(text)
    if cpus:
        print("CPU during the Tollhouse levels:", "; ".join(cpus))


if __name__ == "__main__":
    main()
