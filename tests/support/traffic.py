"""Synthetic governed traffic written through the real audit writer and its ledgers.

Deterministic for a seed: apps, teams, end users, models, upstreams, policy decisions
(allow, route, block), PII findings and redactions, retries, errors, latencies and costs,
spread over a time range. Every person, e-mail address and prompt here is invented.
The dashboard tests seed a few hundred requests with it, `bench/dashboard.py` a million
records.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine

from governance.audit.records import AuditEntry, RecordKind
from governance.audit.traffic import TrafficLedger
from governance.audit.writer import AuditWriter
from governance.spend.ledger import Ledger

APPS = {"support-bot": "customer-care", "claims": "insurance", "search": "platform"}
MODELS = {
    "chat-default": [("vllm-a", "llama-3.1-8b", "internal"), ("openai", "gpt-4o-mini", "external")],
    "chat-large": [("vllm-b", "llama-3.1-70b", "internal")],
}
USERS = [f"user-{i:03d}" for i in range(40)]
ENTITIES = ["EMAIL_ADDRESS", "PERSON", "PHONE_NUMBER", "IBAN_CODE"]


@dataclass(frozen=True, slots=True)
class Shape:
    """How often things happen, as fractions of requests."""

    blocked: float = 0.04
    with_pii: float = 0.25
    errors: float = 0.03
    retried: float = 0.05
    content: float = 0.3  # requests whose redacted content is kept


def requests(
    n: int, start: dt.datetime, end: dt.datetime, *, seed: int = 7, shape: Shape = Shape()
) -> Iterator[AuditEntry]:
    """``n`` requests (an admitted and a completed record each) in time order."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    moments = sorted(rng.random() * span for _ in range(n))
    for i, offset in enumerate(moments):
        yield from _request(rng, i, start + dt.timedelta(seconds=offset), shape)


def _request(rng: random.Random, i: int, at: dt.datetime, shape: Shape) -> list[AuditEntry]:
    app = rng.choice(list(APPS))
    model = rng.choice(list(MODELS))
    upstream, deployment, destination = rng.choice(MODELS[model])
    pii = (
        {e: rng.randint(1, 3) for e in rng.sample(ENTITIES, rng.randint(1, 2))}
        if rng.random() < shape.with_pii
        else {}
    )
    blocked = rng.random() < shape.blocked
    action = "block" if blocked else ("route" if pii and destination == "internal" else "allow")
    decision = {
        "action": action,
        "model": model,
        "destinations": [destination],
        "rules": ["pii.external.mask"] if pii else [],
        "overrides": [],
        "pii": pii,
    }
    if pii and not blocked:
        decision["redaction"] = {destination: {e: "mask" for e in pii}}
    keep = rng.random() < shape.content
    common = {
        "request_id": f"req_{i:09d}",
        "app": app,
        "team": APPS[app],
        "key_id": f"key-{app}",
        "end_user": rng.choice(USERS),
        "endpoint": "chat.completions",
        "requested_model": model,
        "policy_name": "default",
        "policy_version": 1 + (i % 3 == 0),
        "decision": decision,
        "content_retention": "redacted" if keep else "none",
    }
    prompt = (
        {"messages": [{"role": "user", "content": f"Question {i} from <PERSON>"}]} if keep else None
    )
    admitted = AuditEntry(
        kind=RecordKind.ADMITTED,
        recorded_at=at,
        status="admitted",
        request_content=prompt,
        **common,
    )
    if blocked:
        done = AuditEntry(
            kind=RecordKind.COMPLETED,
            recorded_at=at + dt.timedelta(milliseconds=2),
            status="rejected",
            http_status=403,
            error_type="policy_blocked",
            latency_ms=2.0,
            **common,
        )
        return [admitted, done]
    failed = rng.random() < shape.errors
    latency = rng.lognormvariate(6.0, 0.8)  # median about 400 ms
    attempts = [{"upstream": upstream, "model": deployment, "status": 200}]
    if rng.random() < shape.retried:
        attempts.insert(0, {"upstream": upstream, "model": deployment, "status": 503})
    input_tokens, output_tokens = rng.randint(20, 900), rng.randint(5, 400)
    done = AuditEntry(
        kind=RecordKind.COMPLETED,
        recorded_at=at + dt.timedelta(milliseconds=latency),
        status="upstream_error" if failed else "ok",
        http_status=502 if failed else 200,
        upstream=upstream,
        deployment_model=deployment,
        destination=destination,
        attempts=attempts,
        response_model=deployment,
        system_fingerprint=f"fp_{upstream}",
        finish_reasons=None if failed else ["stop"],
        input_tokens=None if failed else input_tokens,
        output_tokens=None if failed else output_tokens,
        cost=None if failed else Decimal(input_tokens * 15 + output_tokens * 60) / Decimal(10**8),
        currency=None if failed else "USD",
        latency_ms=latency,
        ttft_ms=latency / 4,
        response_content={"content": f"Answer {i} for <PERSON>"} if keep else None,
        **common,
    )
    return [admitted, done]


def write(engine: Engine, entries: Iterator[AuditEntry], batch: int = 2000) -> int:
    """Write ``entries`` through an `AuditWriter` with the proxy's ledgers; the count."""
    writer = AuditWriter(engine, batch_max=batch, ledgers=[Ledger(), TrafficLedger()])
    writer.start()
    written = 0
    pending: list[AuditEntry] = []
    try:
        for entry in entries:
            pending.append(entry)
            if len(pending) >= batch:
                writer.write_blocking(pending, timeout_s=120)
                written += len(pending)
                pending = []
        if pending:
            writer.write_blocking(pending, timeout_s=120)
            written += len(pending)
    finally:
        writer.close()
    return written
