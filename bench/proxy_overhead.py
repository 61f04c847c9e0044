"""Gateway overhead: the same requests straight to the demo model and through Tollhouse.

Both servers run as separate processes on loopback; Tollhouse runs with the audit trail
on (SQLite, group commit, full content retention). Prints medians over several rounds:
latency at 1 client (added p50), throughput at N concurrent clients, and the proxy
process's CPU time per request (from /proc, so it counts every thread it uses).

    .venv/bin/python bench/proxy_overhead.py [--requests 400] [--concurrency 16] [--rounds 5]
                                             [--limits]

``--limits`` adds a budget and rate limits (never reached) to the policy, so every
request also reads its budget counters and counts itself against the rate limits.

Figures from this are indicative only; the performance issue replaces it with the shared
gateway harness, pinned cores and peers measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from governed_setup import prepare

ROOT = Path(__file__).resolve().parents[1]
BODY = {
    "model": "",
    "messages": [{"role": "user", "content": "Summarise the quarterly report."}],
    "max_tokens": 16,
}
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def wait_ready(url: str, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url, headers=headers) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


async def sequential(url: str, model: str, headers: dict[str, str], n: int) -> list[float]:
    latencies = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(n):
            started = time.perf_counter()
            async with session.post(url, json={**BODY, "model": model}) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def concurrent(url: str, model: str, headers: dict[str, str], n: int, clients: int) -> float:
    async with aiohttp.ClientSession(
        headers=headers, connector=aiohttp.TCPConnector(limit=clients)
    ) as session:
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(url, json={**BODY, "model": model}) as response:
                    await response.read()
                    assert response.status == 200, response.status

        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--limits", action="store_true", help="budgets and rate limits on")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tollhouse-bench-"))
    up_port, proxy_port = free_port(), free_port()
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    upstream = subprocess.Popen(
        [python, "-m", "tollhouse.demo.model_server", "--port", str(up_port)], env=env
    )
    config, key = prepare(work, f"http://127.0.0.1:{up_port}/v1", limits=args.limits)
    cli = [python, "-m", "tollhouse"]
    proxy = subprocess.Popen(
        [*cli, "serve", "--port", str(proxy_port), "--config", str(config)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    auth = {"Authorization": f"Bearer {key}"}
    direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
    proxy_url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
    try:
        asyncio.run(wait_ready(f"http://127.0.0.1:{up_port}/health", {}))
        asyncio.run(wait_ready(f"http://127.0.0.1:{proxy_port}/healthz", {}))
        asyncio.run(sequential(proxy_url, "chat", auth, 50))  # warm-up
        rows: dict[str, list[float]] = {
            k: []
            for k in (
                "direct_p50",
                "proxy_p50",
                "added_p50",
                "direct_rps",
                "proxy_rps",
                "cpu_ms_per_request",
            )
        }
        for _ in range(args.rounds):
            direct = statistics.median(asyncio.run(sequential(direct_url, "demo-llama", {}, 200)))
            proxied = statistics.median(asyncio.run(sequential(proxy_url, "chat", auth, 200)))
            rows["direct_p50"].append(direct)
            rows["proxy_p50"].append(proxied)
            rows["added_p50"].append(proxied - direct)
            rows["direct_rps"].append(
                asyncio.run(
                    concurrent(direct_url, "demo-llama", {}, args.requests, args.concurrency)
                )
            )
            cpu_before = cpu_seconds(proxy.pid)
            rows["proxy_rps"].append(
                asyncio.run(concurrent(proxy_url, "chat", auth, args.requests, args.concurrency))
            )
            rows["cpu_ms_per_request"].append(
                (cpu_seconds(proxy.pid) - cpu_before) * 1000 / args.requests
            )
        print(
            f"{args.rounds} rounds, medians (spread min-max); {args.concurrency} clients for "
            f"rps; budgets and rate limits {'on' if args.limits else 'off'}"
        )
        for name, values in rows.items():
            print(
                f"  {name:20s} {statistics.median(values):9.2f}   "
                f"({min(values):.2f} - {max(values):.2f})"
            )
    finally:
        proxy.terminate()
        upstream.terminate()
        proxy.wait(20)
        upstream.wait(20)


if __name__ == "__main__":
    main()
