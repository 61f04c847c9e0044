"""How fast `audit verify` re-computes the chains: records per minute on one core.

Writes N records through the real audit writer (four writers, so four chains, with a
signed checkpoint) into a fresh SQLite database, or PostgreSQL with --postgres URL, then
runs the verifier several times pinned to one CPU core and prints the median.

    .venv/bin/python bench/audit_verify.py [--records 1000000] [--rounds 3]
        [--postgres postgresql+psycopg://user@host/db]   # an empty database to use

The target (issue 4) is at least 1,000,000 records per minute on one core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import migrations  # noqa: E402
from governance.audit import AuditEntry, AuditWriter, RecordKind  # noqa: E402
from governance.audit.checkpoint import (  # noqa: E402
    Checkpointer,
    generate_signing_key,
    key_id_of,
    load_public_key,
    load_signing_key,
)
from governance.audit.verify import verify_trail  # noqa: E402
from governance.db import make_engine  # noqa: E402


def entry(i: int) -> AuditEntry:
    """A completed record shaped like the proxy's: decision trace, attempts, usage."""
    return AuditEntry(
        request_id=f"req_{i:012d}",
        kind=RecordKind.COMPLETED,
        recorded_at=dt.datetime.now(dt.UTC),
        app=f"app-{i % 7}",
        team="team-a",
        key_id="0123456789abcdef",
        endpoint="chat.completions",
        status="ok",
        content_retention="none",
        end_user=f"user-{i % 101}",
        requested_model="chat-default",
        upstream="vllm-a",
        deployment_model="llama-3.1-8b",
        destination="internal",
        attempts=[{"upstream": "vllm-a", "status": 200, "ms": 41.2}],
        response_id=f"chatcmpl-{i}",
        response_model="llama-3.1-8b",
        http_status=200,
        finish_reasons=["stop"],
        input_tokens=120 + i % 50,
        output_tokens=300 + i % 70,
        cost=Decimal("0.000162"),
        currency="USD",
        latency_ms=412.25,
        ttft_ms=38.5,
        policy_name="default",
        policy_version=3,
        decision={
            "action": "allow",
            "model": "chat-default",
            "destinations": ["internal"],
            "rules": ["defaults"],
            "overrides": [],
            "pii": {},
            "flags": [],
        },
    )


def fill(url: str, records: int, key_file: Path) -> None:
    engine = make_engine(url)
    chains = 4
    share = -(-records // chains)
    for first in range(0, records, share):  # one writer (chain) after the other
        writer = AuditWriter(engine, batch_max=2000)
        writer.start()
        for start in range(first, min(records, first + share), 2000):
            batch = [entry(i) for i in range(start, min(records, first + share, start + 2000))]
            writer.write_blocking(batch, timeout_s=60)
        writer.close(timeout_s=600)
    Checkpointer(engine, load_signing_key(key_file)).write()
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL to use")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tollhouse-verify-bench-"))
    private, _ = generate_signing_key()
    key_file = work / "signing.pem"
    key_file.write_bytes(private)
    url = args.postgres or f"sqlite:///{work / 'audit.db'}"
    migrations.upgrade(url)
    started = time.perf_counter()
    fill(url, args.records, key_file)
    backend = url.split(":")[0]
    print(f"wrote {args.records:,} records in {time.perf_counter() - started:.1f}s ({backend})")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    public = load_public_key(key_file)
    rates = []
    for round_number in range(1, args.rounds + 1):
        engine = make_engine(url)
        started = time.perf_counter()
        report = verify_trail(engine, {key_id_of(public): public})
        elapsed = time.perf_counter() - started
        engine.dispose()
        assert report.ok, [p.describe() for p in report.problems[:3]]
        rate = report.records / elapsed * 60
        rates.append(rate)
        print(
            f"round {round_number}: {report.records:,} records in {elapsed:.2f}s = {rate:,.0f}/min"
        )
    print(f"median: {statistics.median(rates):,.0f} records per minute on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
