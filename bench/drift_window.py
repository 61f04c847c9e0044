"""How long one drift run takes over a 100k-request window, on one core.

Seeds a fresh SQLite database (or the empty PostgreSQL database given) through the real
audit writer: a reference day and a current day of one subject, each with ``--requests``
completed requests (plus their admitted records), content kept ``full`` (sealed), made-up
prompts and answers. Then pins the process to one CPU core, one torch thread, and times
``run_drift`` a few times; each round starts with an empty embedding cache (the model
stays loaded; its load time is printed separately). Prints each phase and the median.

    .venv/bin/python bench/drift_window.py [--requests 100000] [--rounds 3]
        [--postgres postgresql+psycopg://user@host/db]

The target is under a minute per run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import migrations  # noqa: E402
from governance.audit import AuditEntry, AuditWriter, RecordKind  # noqa: E402
from governance.audit.vault import DataKeys, MasterKey  # noqa: E402
from governance.db import make_engine, session_factory  # noqa: E402
from monitors.drift import CachedEmbedder, DriftSpec, LocalEmbedder, run_drift  # noqa: E402

MASTER = MasterKey(bytes(range(32)))
NOW = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
TOPICS = ["invoice", "parcel", "password", "refund", "workspace", "upgrade", "receipt"]
VERBS = ["update", "find", "reset", "cancel", "change", "download", "check"]
SENTENCES = [
    "Open the settings page and choose the relevant section.",
    "You will see the current status at the top of the page.",
    "If the option is greyed out, ask an administrator to enable it.",
    "Changes usually take effect within a few minutes.",
    "You can also reach our support team from the help menu.",
    "We have sent a confirmation to the address on file.",
]


def entries(day: int, count: int, rng: random.Random, slow: float) -> list[AuditEntry]:
    start = NOW - dt.timedelta(days=day)
    out: list[AuditEntry] = []
    for i in range(count):
        at = start + dt.timedelta(seconds=i * 86_000 / count)
        rid = f"req-{day}-{i}"
        prompt = (
            f"How do I {rng.choice(VERBS)} my {rng.choice(TOPICS)} "
            f"number {rng.randint(1, 400)} on the {rng.choice(['pro', 'team', 'basic'])} plan?"
        )
        answer = " ".join(rng.sample(SENTENCES, rng.randint(2, 5)))
        stream = rng.random() < 0.5
        common = {
            "request_id": rid,
            "app": "bench",
            "team": "cx",
            "key_id": "k-bench",
            "endpoint": "chat.completions",
            "content_retention": "full",
            "requested_model": "chat-default",
            "upstream": "vllm-a",
            "stream": stream,
            "decision": {"action": "allow", "pii": {"EMAIL_ADDRESS": 1} if i % 9 == 0 else {}},
        }
        out.append(
            AuditEntry(
                kind=RecordKind.ADMITTED,
                recorded_at=at,
                status="admitted",
                request_content={"messages": [{"role": "user", "content": prompt}]},
                **common,
            )
        )
        out.append(
            AuditEntry(
                kind=RecordKind.COMPLETED,
                recorded_at=at + dt.timedelta(seconds=1),
                status="ok" if rng.random() > 0.02 else "upstream_error",
                finish_reasons=["stop"],
                input_tokens=40 + rng.randint(0, 30),
                output_tokens=len(answer.split()) + rng.randint(0, 5),
                latency_ms=rng.lognormvariate(6.7, 0.25) * slow,
                ttft_ms=rng.lognormvariate(5.3, 0.3) if stream else None,
                response_content={"choices": [{"index": 0, "message": {"content": answer}}]},
                **common,
            )
        )
    return out


def fill(url: str, requests: int) -> None:
    engine = make_engine(url)
    writer = AuditWriter(engine, data_keys=DataKeys(MASTER), batch_max=5000)
    writer.start()
    rng = random.Random(3)
    for day, slow in ((1, 1.0), (0, 1.2)):  # day 1: reference; day 0: current (slower)
        batch = entries(day, requests, rng, slow)
        for start in range(0, len(batch), 5000):
            writer.write_blocking(batch[start : start + 5000], timeout_s=120)
    writer.close(timeout_s=600)
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="per window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL to use")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tollhouse-drift-bench-"))
    url = args.postgres or f"sqlite:///{work / 'audit.db'}"
    migrations.upgrade(url)
    started = time.perf_counter()
    fill(url, args.requests)
    print(f"seeded 2 x {args.requests:,} requests in {time.perf_counter() - started:.1f}s")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    local = LocalEmbedder(threads=1)
    started = time.perf_counter()
    local.embed(["warm up"])
    print(f"embedding model loaded in {time.perf_counter() - started:.1f}s (not in the runs)")
    engine = make_engine(url)
    sessions = session_factory(engine)
    spec = DriftSpec(
        app="bench", model="chat-default", upstream="vllm-a", window=dt.timedelta(days=1)
    )
    totals = []
    for round_number in range(1, args.rounds + 1):
        started = time.perf_counter()
        outcome = run_drift(
            sessions,
            spec,
            now=NOW + dt.timedelta(days=1),
            embedder=CachedEmbedder(local),  # empty cache: every round embeds its samples
            master_key=MASTER,
        )
        elapsed = time.perf_counter() - started
        totals.append(elapsed)
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(outcome.timings.items()))
        print(
            f"round {round_number}: {elapsed:.1f}s ({phases}); {outcome.n_reference:,} vs "
            f"{outcome.n_current:,} requests, {outcome.status}: "
            f"{', '.join(s.name for s in outcome.drifted) or '-'}"
        )
    engine.dispose()
    print(f"median: {statistics.median(totals):.1f}s per drift run on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
