"""The traffic rollup and the record tags, written by the audit writer with the records.

Checked against brute force over the stored records (an independent oracle, not the
ledger's own code), through a real `AuditWriter` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from governance.access import Principal
from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.audit.reader import AuditReader, RecordFilter
from governance.audit.traffic import PolicyFacts, TrafficLedger
from governance.db import AuditRecord, AuditTag, TrafficHourly, make_engine, session_factory
from governance.db.traffic_models import LATENCY_BOUNDS_MS, LATENCY_BUCKETS
from governance.policy.decision import Decision
from governance.policy.schema import Rules
from governance.spend.ledger import Ledger

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
OPERATOR = Principal.operator("test")
# Latencies on and just past bucket edges, and none at all.
LATENCIES: list[float | None] = [
    0.0,
    25.0,
    25.001,
    LATENCY_BOUNDS_MS[5],
    LATENCY_BOUNDS_MS[-1],
    LATENCY_BOUNDS_MS[-1] + 0.1,
    None,
    730.5,
]


def decision_of(i: int) -> dict[str, Any] | None:
    """Every few requests: no decision, block, route, allow; PII and redaction vary."""
    if i % 7 == 6:
        return None  # refused before policy evaluation
    pii = {"EMAIL_ADDRESS": 2} if i % 3 == 0 else {}
    if i % 5 == 0:
        pii["PERSON"] = 1
    redaction: dict[str, dict[str, str]] = {}
    if "EMAIL_ADDRESS" in pii:
        redaction["external"] = {"EMAIL_ADDRESS": "pseudonymize" if i % 2 else "mask"}
    if "PERSON" in pii and i % 4 == 0:
        redaction["internal"] = {"PERSON": "mask"}
    action = "block" if i % 11 == 0 else "route" if i % 4 == 1 else "allow"
    return Decision(
        policy_name="default",
        policy_version=3,
        action=action,  # type: ignore[arg-type]
        model="chat",
        destinations=("internal", "external"),
        rules=(),
        overrides=(),
        pii_counts=pii,
        flags=(),
        rules_in_force=Rules(),
        pii_actions=redaction,  # type: ignore[arg-type]
    ).trace()


def request(
    i: int, kinds: tuple[RecordKind, ...] = (RecordKind.ADMITTED, RecordKind.COMPLETED)
) -> list[AuditEntry]:
    """The admitted and completed records of request ``i``."""
    decision = decision_of(i)
    blocked = decision is None or decision["action"] == "block"
    destination = None if blocked else ("external" if i % 2 else "internal")
    common: dict[str, Any] = {
        "request_id": f"req_{i}",
        "app": ("billing", "search")[i % 2],
        "team": None if i % 3 == 2 else "finance",
        "key_id": "k1",
        "endpoint": "chat.completions",
        "content_retention": "none",
        "requested_model": "chat",
        "decision": decision,
        "policy_name": None if decision is None else "default",
        "policy_version": None if decision is None else 3,
    }
    at = T0 + dt.timedelta(minutes=17 * i)
    entries = []
    if RecordKind.ADMITTED in kinds:
        entries.append(
            AuditEntry(kind=RecordKind.ADMITTED, recorded_at=at, status="admitted", **common)
        )
    if RecordKind.COMPLETED in kinds:
        tries = 1 + (i % 3 == 1)
        entries.append(
            AuditEntry(
                kind=RecordKind.COMPLETED,
                recorded_at=at + dt.timedelta(seconds=2),
                status="rejected" if blocked else ("ok" if i % 9 else "upstream_error"),
                upstream=None if blocked else f"vllm-{destination}",
                deployment_model=None if blocked else "llama",
                destination=destination,
                attempts=None if blocked else [{"upstream": "u", "n": n} for n in range(tries)],
                latency_ms=LATENCIES[i % len(LATENCIES)],
                ttft_ms=None if i % 2 else 12.5 * i,
                **common,
            )
        )
    return entries


def write(engine: Engine, entries: list[AuditEntry], batch: int = 13) -> None:
    writer = AuditWriter(engine, batch_max=batch, ledgers=[Ledger(), TrafficLedger()])
    writer.start()
    try:
        for start in range(0, len(entries), batch):
            writer.write_blocking(entries[start : start + batch], timeout_s=30)
    finally:
        writer.close()


# -- the oracle ----------------------------------------------------------------------
def found(decision: dict[str, Any] | None) -> dict[str, int]:
    return {k: v for k, v in ((decision or {}).get("pii") or {}).items() if v > 0}


def was_redacted(record: AuditRecord) -> bool:
    if record.decision is None or record.destination is None:
        return False
    actions = (record.decision.get("redaction") or {}).get(record.destination) or {}
    pii = found(record.decision)
    return any(pii.get(e, 0) > 0 and a in ("mask", "pseudonymize") for e, a in actions.items())


def expected_rollup(records: list[AuditRecord]) -> dict[tuple[Any, ...], dict[str, Any]]:
    rollup: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        if r.kind != "completed":
            continue
        key = (
            r.recorded_at.replace(minute=0, second=0, microsecond=0),
            r.app,
            r.team or "",
            r.requested_model or "",
            r.upstream or "",
            r.deployment_model or "",
            r.destination or "",
            r.status,
            (r.decision or {}).get("action", ""),
        )
        row = rollup.setdefault(
            key,
            {
                "requests": 0,
                "redacted": 0,
                "pii_entities": 0,
                "retried": 0,
                "latency_count": 0,
                "latency_ms_sum": 0.0,
                "ttft_count": 0,
                "ttft_ms_sum": 0.0,
                **dict.fromkeys(LATENCY_BUCKETS, 0),
            },
        )
        row["requests"] += 1
        row["redacted"] += was_redacted(r)
        row["pii_entities"] += sum(found(r.decision).values())
        row["retried"] += len(r.attempts or []) > 1
        if r.latency_ms is not None:
            row["latency_count"] += 1
            row["latency_ms_sum"] += r.latency_ms
            bucket = next(
                (b for b, bound in enumerate(LATENCY_BOUNDS_MS) if r.latency_ms <= bound),
                len(LATENCY_BOUNDS_MS),
            )
            row[LATENCY_BUCKETS[bucket]] += 1
        if r.ttft_ms is not None:
            row["ttft_count"] += 1
            row["ttft_ms_sum"] += r.ttft_ms
    return rollup


def expected_tags(records: list[AuditRecord]) -> set[tuple[str, str, int]]:
    tags = set()
    for r in records:
        if r.decision is None or r.kind == "admin":
            continue
        names = [f"action:{r.decision['action']}", *(f"pii:{e}" for e in found(r.decision))]
        if was_redacted(r):
            names.append("redacted")
        tags.update((name, r.chain_id, r.seq) for name in names)
    return tags


def stored_rollup(session: Session) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = ("hour", "app", "team", "model", "upstream", "deployment_model")
    keys += ("destination", "status", "action")
    return {
        tuple(getattr(row, k) for k in keys): {
            c.key: getattr(row, c.key) for c in TrafficHourly.__table__.columns if c.key not in keys
        }
        for row in session.scalars(select(TrafficHourly))
    }


def assert_rollup_matches(engine: Engine) -> list[AuditRecord]:
    with session_factory(engine)() as session:
        records = list(session.scalars(select(AuditRecord)))
        stored = stored_rollup(session)
        tags = {(t.tag, t.chain_id, t.seq) for t in session.scalars(select(AuditTag))}
        times = {
            (t.chain_id, t.seq): t.recorded_at
            for t in session.scalars(select(AuditTag).where(AuditTag.tag.like("action:%")))
        }
    expected = expected_rollup(records)
    assert stored.keys() == expected.keys()
    for key, row in expected.items():
        assert stored[key] == pytest.approx(row), key
    assert tags == expected_tags(records)
    assert times == {
        (r.chain_id, r.seq): r.recorded_at
        for r in records
        if r.decision is not None and r.kind != "admin"
    }
    return records


# -- tests ---------------------------------------------------------------------------
@pytest.fixture
def mixed(fresh_engine: Engine) -> list[AuditEntry]:
    entries = [e for i in range(60) for e in request(i)]
    entries += request(1002, (RecordKind.ADMITTED,))  # its completed record is missing
    write(fresh_engine, entries)
    return entries


def test_rollup_and_tags_equal_brute_force(fresh_engine: Engine, mixed: list[AuditEntry]) -> None:
    records = assert_rollup_matches(fresh_engine)
    assert len(records) == len(mixed)
    with session_factory(fresh_engine)() as session:
        rows = list(session.scalars(select(TrafficHourly)))
    # The batch really was mixed: every kind of contribution is there.
    assert {r.action for r in rows} == {"", "allow", "route", "block"}
    assert sum(r.redacted for r in rows) > 0
    assert sum(r.retried for r in rows) > 0 and sum(r.pii_entities for r in rows) > 0
    assert sum(r.requests for r in rows) == 60
    assert sum(r.latency_count for r in rows) < 60  # some latencies are missing
    assert {b for r in rows for b in LATENCY_BUCKETS if getattr(r, b)} >= {
        "lat_b00",
        "lat_b01",
        "lat_b05",
        "lat_b10",
        "lat_b11",
    }


def test_a_decision_that_redacts_tags_the_record() -> None:
    trace = decision_of(3)  # EMAIL_ADDRESS found, pseudonymised on its way out
    assert trace is not None
    assert PolicyFacts.of(trace, "external").tags() == [
        "action:allow",
        "pii:EMAIL_ADDRESS",
        "redacted",
    ]
    assert PolicyFacts.of(trace, "internal").redacted is False  # allowed there
    assert PolicyFacts.of(trace, None).redacted is False  # nothing left yet
    assert PolicyFacts.of(None, "external").tags() == []


def reader(engine: Engine) -> AuditReader:
    return AuditReader(engine, session_factory(engine))


def matching(entries: list[AuditEntry], where: RecordFilter) -> set[tuple[str, str]]:
    def ok(e: AuditEntry) -> bool:
        d = e.decision
        if where.since is not None and e.recorded_at < where.since:
            return False
        if where.until is not None and e.recorded_at >= where.until:
            return False
        if where.action is not None and (d is None or d["action"] != where.action):
            return False
        return where.pii_entity is None or where.pii_entity in found(d)

    return {(e.request_id, e.kind.value) for e in entries if ok(e)}


FILTERS = [
    RecordFilter(action="block"),
    RecordFilter(action="route"),
    RecordFilter(pii_entity="EMAIL_ADDRESS"),
    RecordFilter(pii_entity="IBAN_CODE"),
    RecordFilter(action="allow", pii_entity="PERSON"),
    RecordFilter(action="allow", since=T0 + dt.timedelta(hours=3)),
    RecordFilter(
        pii_entity="EMAIL_ADDRESS",
        since=T0 + dt.timedelta(hours=2),
        until=T0 + dt.timedelta(hours=9, seconds=1),
    ),
    RecordFilter(action="block", until=T0 + dt.timedelta(hours=10)),
]


@pytest.mark.parametrize("where", FILTERS, ids=lambda w: str(w.as_dict()))
def test_tag_filters_find_exactly_the_tagged_records(
    fresh_engine: Engine, mixed: list[AuditEntry], where: RecordFilter
) -> None:
    expected = matching(mixed, where)
    rows = reader(fresh_engine).query(OPERATOR, where, limit=1000)
    assert {(r["request_id"], r["kind"]) for r in rows} == expected
    assert reader(fresh_engine).count(OPERATOR, where) == (len(expected), False)
    # Both query forms (looked up through the tag index, or probed per record).
    with session_factory(fresh_engine)() as session:
        for walk in ((), where.tags):
            got = session.scalars(where.apply(select(AuditRecord), walk=walk)).all()
            assert {(r.request_id, r.kind) for r in got} == expected, walk


def test_an_admitted_record_is_found_without_its_completion(
    fresh_engine: Engine, mixed: list[AuditEntry]
) -> None:
    where = RecordFilter(action="allow", pii_entity="EMAIL_ADDRESS")  # request 1002's
    found = reader(fresh_engine).query(OPERATOR, where, limit=1000)
    assert ("req_1002", "admitted") in {(r["request_id"], r["kind"]) for r in found}


def test_count_stops_at_the_cap(fresh_engine: Engine, mixed: list[AuditEntry]) -> None:
    everything = len(mixed)
    blocked = len(matching(mixed, RecordFilter(action="block")))
    assert reader(fresh_engine).count(OPERATOR, RecordFilter()) == (everything, False)
    assert reader(fresh_engine).count(OPERATOR, RecordFilter(), cap=everything) == (
        everything,
        False,
    )
    assert reader(fresh_engine).count(OPERATOR, RecordFilter(), cap=10) == (10, True)
    assert reader(fresh_engine).count(OPERATOR, RecordFilter(action="block"), cap=2) == (2, True)
    assert blocked > 2


@pytest.fixture
def postgres_engine(fresh_postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_postgres_url)
    yield engine
    engine.dispose()


def test_concurrent_writers_lose_no_counts(postgres_engine: Engine) -> None:
    """Two writers (two chains) adding to the same rollup rows at the same time."""
    per_writer = [[e for i in range(w, 240, 2) for e in request(i % 12)] for w in range(2)]
    threads = [
        threading.Thread(target=write, args=(postgres_engine, entries, 7)) for entries in per_writer
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = assert_rollup_matches(postgres_engine)
    assert len(records) == sum(len(e) for e in per_writer)
